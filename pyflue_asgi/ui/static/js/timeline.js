// The waterfall view of a RunTree: one fixed-height row per visible node, name indented by depth,
// duration, tokens and a bar placed on the run's time axis. Only the rows in (and near) the viewport
// exist in the DOM, so a run of thousands of events stays light; redraws happen at most once per
// animation frame. Keyboard: ↑/↓ move, ←/→ collapse/expand (or go to parent/child), Home/End,
// Enter or Space toggles.

import { fmtDuration, fmtTokens, h, tokens, usageTitle } from "./dom.js";
import { visibleRows } from "./tree.js";

const ROW = 26; // px; keep in sync with .tl-row in style.css
const OVERSCAN = 12;

export class Timeline {
  constructor(tree, { onSelect }) {
    this.tree = tree;
    this.onSelect = onSelect;
    this.rows = [];
    this.selected = null;
    this._drawnVersion = -1;
    this._frame = 0;
    this._follow = true; // keep the newest rows in view while the user is at the bottom

    this.body = h("div", { class: "tl-rows" });
    this.spacer = h("div", { class: "tl-spacer" }, this.body);
    this.scroller = h(
      "div",
      {
        class: "tl-scroll",
        tabindex: "0",
        role: "tree",
        "aria-label": "Run timeline",
        onscroll: () => {
          const s = this.scroller;
          this._follow = s.scrollTop + s.clientHeight >= s.scrollHeight - ROW * 2;
          this.invalidate();
        },
        onkeydown: (e) => this._key(e),
      },
      this.spacer,
    );
    this.element = h(
      "section",
      { class: "timeline", "aria-label": "Timeline" },
      h(
        "div",
        { class: "tl-head", "aria-hidden": "true" },
        h("span", { class: "tl-name", text: "Step" }),
        h("span", { class: "tl-dur", text: "Duration" }),
        h("span", { class: "tl-tok", text: "Tokens" }),
        h("span", { class: "tl-bar", text: "Waterfall" }),
      ),
      this.scroller,
    );
    this.body.addEventListener("click", (e) => {
      const row = e.target.closest(".tl-row");
      if (!row) return;
      const n = this.rows[Number(row.dataset.index)];
      if (e.target.closest(".tl-toggle")) this._toggle(n);
      this.select(n);
      this.scroller.focus({ preventScroll: true });
    });
  }

  /** Redraw at the next animation frame (many calls in one frame cost one redraw). */
  invalidate() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.draw();
    });
  }

  destroy() {
    cancelAnimationFrame(this._frame);
  }

  select(n) {
    this.selected = n;
    this.onSelect(n);
    this._reveal(n);
    this.draw(true);
  }

  draw(force = false) {
    const tree = this.tree;
    if (force || tree.version !== this._drawnVersion) {
      this.rows = visibleRows(tree.root);
      this._drawnVersion = tree.version;
      this.spacer.style.height = `${this.rows.length * ROW}px`;
      this.element.dataset.rows = String(this.rows.length);
      this.element.dataset.events = String(tree.events);
      if (this._follow && !this.selected) this.scroller.scrollTop = this.scroller.scrollHeight;
    }
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const t0 = tree.tmin ?? 0;
    const span = Math.max(1, (tree.root.end ?? tree.tmax ?? t0) - t0);
    const open = tree.root.end ?? tree.tmax ?? t0;
    const fragment = [];
    for (let i = first; i < last; i += 1) fragment.push(this._row(this.rows[i], i, t0, span, open));
    this.body.style.transform = `translateY(${first * ROW}px)`;
    this.body.replaceChildren(...fragment);
    if (this.selected) this.scroller.setAttribute("aria-activedescendant", `tl-${this.selected.key}`);
  }

  _row(n, index, t0, span, open) {
    const start = n.start ?? t0;
    const end = n.end ?? (n.status === "running" ? open : start);
    const left = ((start - t0) / span) * 100;
    const width = Math.max(((end - start) / span) * 100, 0);
    const toggle = n.children.length
      ? h("span", { class: "tl-toggle", "aria-hidden": "true", text: n.expanded ? "▾" : "▸" })
      : h("span", { class: "tl-toggle tl-leaf", "aria-hidden": "true" });
    const duration = n.duration ?? (n.end !== null && n.start !== null ? n.end - n.start : null);
    const point = n.kind === "log" || n.kind === "custom" || n.kind === "event";
    return h(
      "div",
      {
        class: `tl-row kind-${n.kind}${n === this.selected ? " selected" : ""}${n.status ? ` st-${n.status}` : ""}`,
        id: `tl-${n.key}`,
        role: "treeitem",
        "aria-level": String(n.depth + 1),
        "aria-expanded": n.children.length ? String(n.expanded) : null,
        "aria-selected": String(n === this.selected),
        dataset: { index: String(index), key: n.key, kind: n.kind, depth: String(n.depth), parent: n.parent?.key ?? "" },
      },
      h(
        "span",
        { class: "tl-name", style: { paddingLeft: `${n.depth * 16 + 4}px` } },
        toggle,
        h("span", { class: `tl-kind k-${n.kind}`, text: n.kind === "run" ? "run" : n.kind }),
        h("span", { class: "tl-label", text: n.kind === "run" ? n.label.replace(/^run /, "") : n.label.replace(/^(model|tool|task) /, "") }),
        n.note ? h("span", { class: "tl-note", text: n.note.length > 200 ? `${n.note.slice(0, 199)}…` : n.note }) : null,
      ),
      h("span", { class: "tl-dur", text: point ? "" : n.status === "running" ? "…" : fmtDuration(duration) }),
      h("span", { class: "tl-tok", text: fmtTokens(n.usage), title: usageTitle(n.usage) || null }),
      h(
        "span",
        { class: "tl-bar" },
        h("span", {
          class: point ? "bar tick" : "bar",
          style: point ? { left: `${left}%` } : { left: `${left}%`, width: `${width}%` },
          title: tokens(n.usage) ? usageTitle(n.usage) : null,
        }),
      ),
    );
  }

  _toggle(n) {
    if (!n?.children.length) return;
    n.expanded = !n.expanded;
    this.draw(true);
  }

  _reveal(n) {
    const index = this.rows.indexOf(n);
    if (index < 0) return;
    const s = this.scroller;
    if (index * ROW < s.scrollTop) s.scrollTop = index * ROW;
    else if ((index + 1) * ROW > s.scrollTop + s.clientHeight) s.scrollTop = (index + 1) * ROW - s.clientHeight;
  }

  _key(e) {
    const rows = this.rows;
    if (!rows.length) return;
    const index = this.selected ? rows.indexOf(this.selected) : -1;
    const n = this.selected;
    let next = null;
    switch (e.key) {
      case "ArrowDown":
        next = rows[Math.min(rows.length - 1, index + 1)];
        break;
      case "ArrowUp":
        next = rows[Math.max(0, index - 1)];
        break;
      case "Home":
        next = rows[0];
        break;
      case "End":
        next = rows[rows.length - 1];
        break;
      case "PageDown":
        next = rows[Math.min(rows.length - 1, index + Math.floor(this.scroller.clientHeight / ROW))];
        break;
      case "PageUp":
        next = rows[Math.max(0, index - Math.floor(this.scroller.clientHeight / ROW))];
        break;
      case "ArrowRight":
        if (n?.children.length && !n.expanded) this._toggle(n);
        else if (n?.children.length) next = n.children[0];
        break;
      case "ArrowLeft":
        if (n?.children.length && n.expanded) this._toggle(n);
        else if (n?.parent) next = n.parent;
        break;
      case "Enter":
      case " ":
        this._toggle(n);
        break;
      default:
        return;
    }
    e.preventDefault();
    if (next) this.select(next);
  }
}
