// Dispatches: the durable queue and its outcomes, refreshed every few seconds, with a cancel
// button on the items that have not finished. The page exists only when the server has the
// /dispatches routes (main.js asks once and hides the link on a 404).

import { errorText, fmtTime, h, shorten, statusBadge } from "./dom.js";

const REFRESH_MS = 2000;
const OPEN = new Set(["queued", "running", "leased", "pending", "retrying"]);

export function dispatchesPage(main, { api }, query) {
  const controller = new AbortController();
  const signal = controller.signal;
  let timer = 0;
  const status = query.get("status") ?? "";
  const statusSelect = h(
    "select",
    {
      id: "d-status",
      onchange: () => {
        history.replaceState(null, "", statusSelect.value ? `#/dispatches?status=${encodeURIComponent(statusSelect.value)}` : "#/dispatches");
        load();
      },
    },
    ["", "queued", "running", "delivered", "failed", "cancelled"].map((s) => h("option", { value: s, text: s || "Any status", selected: s === status })),
  );
  const tbody = h("tbody");
  const notice = h("p", { class: "error", role: "alert", hidden: true });
  main.replaceChildren(
    h("h1", { text: "Dispatches" }),
    h("div", { class: "filters" }, h("label", {}, "Status ", statusSelect)),
    notice,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "runs" },
        h("thead", {}, h("tr", {}, ["Dispatch", "Agent", "Instance / session", "Status", "Attempts", "Accepted", "Outcome", ""].map((t) => h("th", { scope: "col", text: t })))),
        tbody,
      ),
    ),
  );

  async function load() {
    clearTimeout(timer);
    const params = new URLSearchParams();
    if (statusSelect.value) params.set("status", statusSelect.value);
    try {
      const body = await api.get(`/dispatches${params.size ? `?${params}` : ""}`, { signal });
      notice.hidden = true;
      draw(Array.isArray(body) ? body : (body.dispatches ?? []));
    } catch (error) {
      if (signal.aborted) return;
      notice.hidden = false;
      notice.textContent = `Could not load dispatches: ${errorText(error)}`;
    }
    if (!signal.aborted) timer = setTimeout(load, REFRESH_MS);
  }

  function draw(items) {
    const rows = items.map((d) => {
      const outcome = d.outcome ?? {};
      const open = OPEN.has(d.status);
      return h(
        "tr",
        { dataset: { dispatch: d.dispatch_id, status: d.status } },
        h("td", { class: "mono", title: d.dispatch_id, text: String(d.dispatch_id ?? "").split(":").pop() }),
        h("td", {}, h("a", { href: `#/agents/${encodeURIComponent(d.agent)}`, text: d.agent })),
        h("td", { text: `${d.instance_id} / ${d.session_id ?? "default"}` }),
        h("td", {}, statusBadge(d.status)),
        h("td", { class: "num", text: `${d.attempts ?? 0}${d.max_attempts ? ` / ${d.max_attempts}` : ""}` }),
        h("td", { text: fmtTime(d.accepted_at), title: d.accepted_at }),
        h("td", { class: outcome.error ? "err" : "", text: shorten(outcome.error ? errorText(outcome.error) : (outcome.text ?? d.cancel_requested ?? ""), 90) }),
        h("td", {}, open ? h("button", { type: "button", class: "small danger", onclick: () => cancel(d.dispatch_id) }, "Cancel") : null),
      );
    });
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "8", class: "muted empty", text: "Nothing dispatched." })));
    tbody.replaceChildren(...rows);
  }

  async function cancel(id) {
    try {
      await api.post(`/dispatches/${encodeURIComponent(id)}/cancel`, undefined, { signal });
    } catch (error) {
      notice.hidden = false;
      notice.textContent = errorText(error);
    }
    load();
  }

  load();
  return () => {
    controller.abort();
    clearTimeout(timer);
  };
}
