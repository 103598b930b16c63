// The runs table: newest first, filtered by workflow and status, paged with the API's cursors
// (so 10 000 runs cost one page at a time), refreshed every few seconds while the tab is visible.
// A form starts a new run of any workflow.

import { errorText, fmtDuration, fmtTime, fmtTokens, h, shorten, statusBadge, usageTitle } from "./dom.js";

const STATUSES = ["running", "completed", "failed", "cancelled", "interrupted"];
const SIZES = [25, 50, 100];
const REFRESH_MS = 2000;

export function runsPage(main, { api }, query) {
  const controller = new AbortController();
  const signal = controller.signal;
  const filters = {
    workflow: query.get("workflow") ?? "",
    status: query.get("status") ?? "",
    limit: SIZES.includes(Number(query.get("limit"))) ? Number(query.get("limit")) : 50,
  };
  let cursors = [null]; // cursors[i]: the cursor of page i
  let page = 0;
  let next = null;
  let timer = 0;

  const workflowSelect = h("select", { id: "f-workflow", onchange: () => setFilter("workflow", workflowSelect.value) }, h("option", { value: "", text: "All workflows" }));
  const statusSelect = h(
    "select",
    { id: "f-status", onchange: () => setFilter("status", statusSelect.value) },
    h("option", { value: "", text: "Any status" }),
    STATUSES.map((s) => h("option", { value: s, text: s, selected: s === filters.status })),
  );
  const sizeSelect = h(
    "select",
    { id: "f-limit", onchange: () => setFilter("limit", Number(sizeSelect.value)) },
    SIZES.map((n) => h("option", { value: String(n), text: `${n} per page`, selected: n === filters.limit })),
  );
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs" },
    h("caption", { class: "sr-only", text: "Runs, newest first" }),
    h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Started", "Duration", "Tokens", "Error"].map((t) => h("th", { scope: "col", text: t })))),
    tbody,
  );
  const prev = h("button", { type: "button", onclick: () => go(page - 1), disabled: true }, "← Newer");
  const more = h("button", { type: "button", onclick: () => go(page + 1), disabled: true }, "Older →");
  const pageLabel = h("span", { class: "muted" });
  const notice = h("p", { class: "error", role: "alert", hidden: true });
  const starter = startForm(api, signal);

  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { text: "Runs" }), starter.toggle),
    starter.form,
    h(
      "div",
      { class: "filters", role: "search" },
      h("label", {}, "Workflow ", workflowSelect),
      h("label", {}, "Status ", statusSelect),
      h("label", {}, "Show ", sizeSelect),
    ),
    notice,
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "pager" }, prev, pageLabel, more),
  );

  function setFilter(key, value) {
    filters[key] = value;
    const params = new URLSearchParams();
    if (filters.workflow) params.set("workflow", filters.workflow);
    if (filters.status) params.set("status", filters.status);
    if (filters.limit !== 50) params.set("limit", String(filters.limit));
    const hash = `#/runs${params.size ? `?${params}` : ""}`;
    history.replaceState(null, "", hash);
    cursors = [null];
    go(0);
  }

  function go(index) {
    page = Math.max(0, index);
    load();
  }

  async function load() {
    clearTimeout(timer);
    const params = new URLSearchParams({ limit: String(filters.limit) });
    if (filters.workflow) params.set("workflow", filters.workflow);
    if (filters.status) params.set("status", filters.status);
    if (cursors[page]) params.set("cursor", cursors[page]);
    try {
      const body = await api.get(`/runs?${params}`, { signal });
      next = body.next_cursor;
      cursors[page + 1] = next;
      notice.hidden = true;
      draw(body.runs);
    } catch (error) {
      if (signal.aborted) return;
      notice.hidden = false;
      notice.textContent = `Could not load runs: ${errorText(error)}`;
    }
    if (!signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  }

  function refresh() {
    if (document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    else load();
  }

  function draw(runs) {
    const focused = document.activeElement?.closest?.("tr")?.dataset.run;
    const rows = runs.map((r) => {
      const duration = r.duration_ms ?? (r.status === "running" ? Date.now() - Date.parse(r.started_at) : null);
      return h(
        "tr",
        { dataset: { run: r.run_id, status: r.status } },
        h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}`, title: r.run_id, text: r.run_id.split(":").pop() })),
        h("td", { text: r.workflow }),
        h("td", {}, statusBadge(r.status)),
        h("td", { text: fmtTime(r.started_at), title: r.started_at }),
        h("td", { class: "num", text: fmtDuration(duration) }),
        h("td", { class: "num", text: fmtTokens(r.usage), title: usageTitle(r.usage) || null }),
        h("td", { class: "err", text: r.error ? shorten(errorText(r.error), 90) : "", title: r.error ? errorText(r.error) : null }),
      );
    });
    if (!rows.length) {
      rows.push(h("tr", {}, h("td", { colspan: "7", class: "muted empty", text: page ? "No older runs." : "No runs yet." })));
    }
    tbody.replaceChildren(...rows);
    if (focused) tbody.querySelector(`tr[data-run="${CSS.escape(focused)}"] a`)?.focus();
    prev.disabled = page === 0;
    more.disabled = !next;
    pageLabel.textContent = `Page ${page + 1}`;
  }

  api.get("/workflows", { signal }).then(
    (body) => {
      for (const w of body.workflows) workflowSelect.append(h("option", { value: w.name, text: w.name, selected: w.name === filters.workflow }));
      starter.setWorkflows(body.workflows);
    },
    () => {},
  );
  load();

  return () => {
    controller.abort();
    clearTimeout(timer);
  };
}

function startForm(api, signal) {
  const select = h("select", { id: "start-workflow", required: true });
  const payload = h("textarea", { id: "start-payload", rows: "4", spellcheck: "false", "aria-describedby": "start-hint" });
  const hint = h("p", { id: "start-hint", class: "muted small" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  let schemas = {};
  const describe = () => {
    const schema = schemas[select.value];
    const fields = schema?.properties ? Object.keys(schema.properties) : [];
    hint.textContent = fields.length ? `Payload fields: ${fields.join(", ")} (JSON).` : "Payload: any JSON value.";
    if (!payload.value.trim() && fields.length) payload.value = JSON.stringify(Object.fromEntries(fields.map((f) => [f, ""])), null, 2);
  };
  select.addEventListener("change", () => {
    payload.value = "";
    describe();
  });
  const form = h(
    "form",
    {
      class: "start card",
      hidden: true,
      onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        let body;
        try {
          body = payload.value.trim() ? JSON.parse(payload.value) : {};
        } catch (err) {
          error.hidden = false;
          error.textContent = `The payload is not JSON: ${err.message}`;
          return;
        }
        try {
          const started = await api.post(`/workflows/${encodeURIComponent(select.value)}`, body, { signal });
          location.hash = `#/runs/${encodeURIComponent(started.run_id)}`;
        } catch (err) {
          error.hidden = false;
          error.textContent = errorText(err);
        }
      },
    },
    h("h2", { text: "Start a run" }),
    h("label", {}, "Workflow ", select),
    h("label", { class: "block" }, "Payload", payload),
    hint,
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Start")),
  );
  const toggle = h("button", {
    type: "button",
    "aria-expanded": "false",
    onclick: () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) select.focus();
    },
  }, "Start a run…");
  return {
    form,
    toggle,
    setWorkflows(workflows) {
      schemas = Object.fromEntries(workflows.map((w) => [w.name, w.payload_schema]));
      select.replaceChildren(...workflows.map((w) => h("option", { value: w.name, text: w.name })));
      describe();
    },
  };
}
