// One run: its record (payload, result or error), a cancel button while it runs, and the timeline,
// which grows live from the run's SSE stream. Events are queued as they arrive and applied to the
// tree once per animation frame, so a burst of thousands of events never blocks the page.

import { ApiError } from "./api.js";
import {
  errorText,
  facts,
  fmtDuration,
  fmtTime,
  fmtTokens,
  h,
  json,
  pre,
  statusBadge,
  usageTitle,
} from "./dom.js";
import { Timeline } from "./timeline.js";
import { RunTree } from "./tree.js";

const BATCH = 2000; // events applied per frame at most

export function runPage(main, { api, setConn }, runId) {
  const controller = new AbortController();
  const signal = controller.signal;
  const path = `/runs/${encodeURIComponent(runId)}`;
  const tree = new RunTree(runId);
  let record = null;
  let queue = [];
  let frame = 0;

  const heading = h("h1", {}, h("span", { class: "muted", text: "Run " }), h("span", { class: "mono", text: runId }));
  const summary = h("div", { class: "run-summary" });
  const cancel = h("button", { type: "button", class: "danger", hidden: true, onclick: onCancel }, "Cancel run");
  const notice = h("p", { class: "error", role: "alert", hidden: true });
  const ioPanel = h("div", { class: "run-io" });
  const details = h("aside", { class: "details", "aria-label": "Details", "aria-live": "polite" }, h("p", { class: "muted", text: "Select a step to see its details." }));
  const timeline = new Timeline(tree, { onSelect: (n) => showDetails(details, n) });

  main.replaceChildren(
    h("p", {}, h("a", { href: "#/runs", text: "← Runs" })),
    h("div", { class: "run-head" }, heading, cancel),
    notice,
    summary,
    ioPanel,
    h("div", { class: "run-body" }, timeline.element, details),
  );

  function drawRecord() {
    if (!record) return;
    const r = record;
    const live = tree.root.status !== "running" ? tree.root.status : r.status;
    summary.replaceChildren(
      facts([
        ["Workflow", r.workflow],
        ["Status", statusBadge(live)],
        ["Started", fmtTime(r.started_at)],
        ["Duration", fmtDuration(r.duration_ms ?? tree.root.duration)],
        ["Tokens", h("span", { title: usageTitle(r.usage) || null, text: fmtTokens(r.usage ?? tree.root.usage) || "0" })],
        ["Error", r.error ? errorText(r.error) : null],
      ]),
    );
    summary.dataset.status = live;
    cancel.hidden = live !== "running";
    const parts = [h("section", { class: "io" }, h("h2", { text: "Payload" }), pre(r.payload))];
    if (r.error) parts.push(h("section", { class: "io" }, h("h2", { text: "Error" }), pre(r.error, "json err")));
    else if (live !== "running") parts.push(h("section", { class: "io" }, h("h2", { text: "Result" }), pre(r.result)));
    ioPanel.replaceChildren(...parts);
  }

  async function loadRecord() {
    try {
      record = await api.get(path, { signal });
      drawRecord();
    } catch (error) {
      if (signal.aborted) return;
      notice.hidden = false;
      notice.textContent = error instanceof ApiError && error.status === 404 ? `No run ${runId}.` : errorText(error);
    }
  }

  function pump() {
    frame = 0;
    const batch = queue.length > BATCH ? queue.splice(0, BATCH) : queue;
    if (batch === queue) queue = [];
    let ended = false;
    for (const event of batch) {
      tree.add(event);
      if (event.type === "run_end") ended = true;
    }
    timeline.invalidate();
    if (timeline.selected) showDetails(details, timeline.selected);
    if (ended) loadRecord(); // the final record: result, error, duration
    if (queue.length) frame = requestAnimationFrame(pump);
  }

  async function onCancel() {
    cancel.disabled = true;
    try {
      await api.post(`${path}/cancel`, undefined, { signal });
    } catch (error) {
      notice.hidden = false;
      notice.textContent = errorText(error);
    } finally {
      cancel.disabled = false;
    }
  }

  loadRecord().then(() => {
    if (!record) return;
    api.follow(`${path}/stream`, {
      signal,
      onState: (state) => setConn(state === "ended" ? "" : state),
      onError: (error) => {
        notice.hidden = false;
        notice.textContent = errorText(error);
      },
      onMessage: (message) => {
        const event = message.data;
        if (event && typeof event === "object" && event.type) {
          queue.push(event);
          if (!frame) frame = requestAnimationFrame(pump);
        }
        return message.event === "run_end";
      },
    });
  });

  return () => {
    controller.abort();
    cancelAnimationFrame(frame);
    timeline.destroy();
    setConn("");
  };
}

function showDetails(panel, n) {
  const start = n.start_event;
  const end = n.end_event;
  const sd = start?.data ?? {};
  const ed = end?.data ?? {};
  const rows = [
    ["Kind", n.kind],
    ["Status", n.status ? statusBadge(n.status) : null],
    ["Started", start?.ts ? fmtTime(start.ts) : null],
    ["Duration", n.duration !== null ? fmtDuration(n.duration) : null],
    ["Tokens", n.usage ? usageTitle(n.usage) : null],
    ["Agent", start?.agent ? [start.agent, start.instance_id, start.session_id].filter(Boolean).join(" / ") : null],
    ["Operation", start?.operation_id ?? null],
    ["Parent", start?.parent_id ?? null],
  ];
  const body = [h("h2", { text: n.label || n.kind }), facts(rows)];
  const section = (title, value, cls) => body.push(h("h3", { text: title }), pre(value, cls));
  if (n.error) section("Error", n.error, "json err");
  switch (n.kind) {
    case "run":
      break;
    case "operation":
      if (sd.input !== undefined) section("Input", sd.input);
      if (n.text) section("Answer", n.text, "text");
      break;
    case "model":
      if (sd.settings && Object.keys(sd.settings).length) section("Settings", sd.settings);
      if (ed.finish_reason) body.push(facts([["Finish", ed.finish_reason], ["Response model", ed.response_model], ["Response id", ed.response_id]]));
      if (n.thinking) section("Thinking", n.thinking, "text");
      if (n.text) section("Text", n.text, "text");
      break;
    case "tool":
      section("Arguments", sd.args);
      if ("result" in ed) section("Result", ed.result, "text");
      if (n.task) section("Subagent task", n.task_end ?? n.task);
      break;
    case "log":
      section("Message", sd.message ?? "", "text");
      if (sd.fields && Object.keys(sd.fields).length) section("Fields", sd.fields);
      break;
    default:
      section("Data", end ? { start: sd, end: ed } : sd);
  }
  body.push(h("details", {}, h("summary", { text: "Raw events" }), h("pre", { class: "json", text: json(end ? [start, end] : [start]) })));
  panel.replaceChildren(...body);
  panel.dataset.kind = n.kind;
}
