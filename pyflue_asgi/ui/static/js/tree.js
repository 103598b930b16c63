// A run's events as a tree: the run, its operations (prompts, tasks, compactions), their model
// calls and tool calls, subagent tasks nested under the tool call that started them, and log
// lines in place. Built incrementally, one event at a time, in O(1) per event; text deltas are
// folded into their model call instead of becoming nodes of their own.

const LEAF_KINDS = new Set(["abort", "error", "dispatch_accepted", "dispatch_delivered", "dispatch_failed"]);

let counter = 0;

function node(kind, label, parent, ts) {
  const n = {
    key: `n${++counter}`,
    kind,
    label,
    note: "",
    parent,
    depth: parent ? parent.depth + 1 : 0,
    children: [],
    start: ts,
    end: null,
    status: null,
    usage: null,
    duration: null,
    error: null,
    text: "",
    thinking: "",
    start_event: null,
    end_event: null,
    expanded: true,
    seq: 0,
  };
  if (parent) parent.children.push(n);
  return n;
}

function time(ts) {
  const t = Date.parse(ts);
  return Number.isNaN(t) ? null : t;
}

function fields(data) {
  if (!data || typeof data !== "object") return "";
  return Object.entries(data)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

export class RunTree {
  constructor(runId) {
    this.root = node("run", "run", null, null);
    this.runId = runId;
    this.root.status = "running";
    this.size = 1; // nodes
    this.events = 0; // events applied
    this.lastSeq = 0;
    this.tmin = null;
    this.tmax = null;
    this.version = 0; // bumps on every change; views redraw when it moved
    this._ops = new Map(); // operation_id -> node
    this._models = new Map(); // operation_id -> the open model call
    this._tools = new Map(); // operation_id \n call_id -> node
    this._taskTools = new Map(); // task operation_id -> the tool call that started it
    this._compactions = new Map(); // operation_id -> open compaction
  }

  /** Apply one event envelope ({type, ts, seq, operation_id, parent_id, data, ...}). */
  add(event) {
    if (typeof event.seq === "number") {
      if (event.seq && event.seq <= this.lastSeq) return; // a resumed stream may repeat nothing, but be safe
      this.lastSeq = Math.max(this.lastSeq, event.seq);
    }
    const ts = time(event.ts);
    if (ts !== null) {
      if (this.tmin === null || ts < this.tmin) this.tmin = ts;
      if (this.tmax === null || ts > this.tmax) this.tmax = ts;
    }
    this.events += 1;
    this.version += 1;
    const data = event.data ?? {};
    const handler = HANDLERS[event.type];
    if (handler) handler.call(this, event, data, ts);
    else this._leaf(event, data, ts);
  }

  _new(kind, label, parent, ts, event) {
    const n = node(kind, label, parent, ts);
    n.start_event = event;
    n.seq = event.seq ?? 0;
    this.size += 1;
    return n;
  }

  _op(event, ts) {
    const id = event.operation_id;
    if (!id) return this.root;
    let op = this._ops.get(id);
    if (!op) {
      // Events of an operation whose start we did not see (a stream joined late).
      op = this._new("operation", "operation", this._ops.get(event.parent_id) ?? this.root, ts, event);
      op.note = id;
      this._ops.set(id, op);
    }
    return op;
  }

  _finish(n, event, data, ts) {
    n.end = ts;
    n.end_event = event;
    if (data.usage) n.usage = data.usage;
    if (typeof data.duration_ms === "number") {
      n.duration = data.duration_ms;
      if (n.start === null && ts !== null) n.start = ts - data.duration_ms;
    }
    if (data.error) {
      n.error = data.error;
      n.status = "failed";
    } else {
      n.status = data.status ?? "completed";
    }
  }

  _leaf(event, data, ts) {
    const parent = this._op(event, ts);
    const n = this._new(LEAF_KINDS.has(event.type) ? "event" : "custom", event.type, parent, ts, event);
    n.end = ts;
    if (event.type === "error" || data.error) {
      n.error = data.error ?? null;
      n.status = "failed";
    }
    n.note = data.error ? `${data.error.type ?? "Error"}: ${data.error.message ?? ""}` : (data.reason ?? fields(data));
  }
}

const HANDLERS = {
  run_start(event, data, ts) {
    const root = this.root;
    root.label = `run ${data.workflow ?? ""}`.trim();
    root.start = ts;
    root.start_event = event;
    root.seq = event.seq ?? 0;
  },
  run_end(event, data, ts) {
    this._finish(this.root, event, data, ts);
    this.root.status = data.status ?? this.root.status;
  },
  operation_start(event, data, ts) {
    const id = event.operation_id;
    const parent = this._taskTools.get(id) ?? this._ops.get(event.parent_id) ?? this.root;
    let op = this._ops.get(id);
    if (op) {
      op.start_event = event; // placeholder made by an earlier event: now we know what it is
    } else {
      op = this._new("operation", "", parent, ts, event);
      this._ops.set(id, op);
    }
    op.label = data.kind ?? "operation";
    const who = [event.agent, event.session_id].filter(Boolean).join(" / ");
    op.note = who;
    op.status = "running";
  },
  operation_end(event, data, ts) {
    const op = this._op(event, ts);
    this._finish(op, event, data, ts);
    if (typeof data.text === "string") op.text = data.text;
  },
  model_start(event, data, ts) {
    const op = this._op(event, ts);
    const n = this._new("model", `model ${[data.provider, data.model].filter(Boolean).join("/")}`, op, ts, event);
    n.status = "running";
    this._models.set(event.operation_id, n);
  },
  model_end(event, data, ts) {
    const n = this._models.get(event.operation_id);
    if (!n) return this._leaf(event, data, ts);
    this._models.delete(event.operation_id);
    this._finish(n, event, data, ts);
    if (data.finish_reason) n.note = data.finish_reason;
  },
  text_delta(event, data) {
    const n = this._models.get(event.operation_id);
    if (n) n.text += data.text ?? "";
  },
  thinking_delta(event, data) {
    const n = this._models.get(event.operation_id);
    if (n) n.thinking += data.text ?? "";
  },
  tool_start(event, data, ts) {
    const op = this._op(event, ts);
    const n = this._new("tool", `tool ${data.tool ?? ""}`.trim(), op, ts, event);
    n.status = "running";
    n.note = data.args === undefined ? "" : JSON.stringify(data.args);
    this._tools.set(`${event.operation_id}\n${data.call_id}`, n);
  },
  tool_end(event, data, ts) {
    const n = this._tools.get(`${event.operation_id}\n${data.call_id}`);
    if (!n) return this._leaf(event, data, ts);
    this._finish(n, event, data, ts);
  },
  task_start(event, data, ts) {
    let n = this._tools.get(`${event.operation_id}\n${data.call_id}`);
    if (!n) {
      // A task started from code (session.task), not by a tool call: a node of its own.
      n = this._new("task", `task ${data.agent ?? ""}`.trim(), this._op(event, ts), ts, event);
      n.status = "running";
    }
    n.task = data;
    if (data.task_operation_id) this._taskTools.set(data.task_operation_id, n);
  },
  task_end(event, data, ts) {
    const n = this._taskTools.get(data.task_operation_id);
    if (!n) return;
    n.task_end = data;
    if (n.kind === "task") this._finish(n, event, data, ts);
    else if (data.usage && !n.usage) n.usage = data.usage;
  },
  compaction_start(event, data, ts) {
    const op = this._op(event, ts);
    const n = this._new("compaction", "compaction", op, ts, event);
    n.note = data.reason ?? "";
    n.status = "running";
    this._compactions.set(event.operation_id, n);
  },
  compaction_end(event, data, ts) {
    const n = this._compactions.get(event.operation_id);
    if (!n) return this._leaf(event, data, ts);
    this._compactions.delete(event.operation_id);
    this._finish(n, event, data, ts);
    if (data.tokens_before !== undefined) n.note = `${n.note} ${data.tokens_before} → ${data.tokens_after} tokens`;
  },
  log(event, data, ts) {
    const parent = this._op(event, ts);
    const n = this._new("log", data.level ?? "log", parent, ts, event);
    n.end = ts;
    n.note = `${data.message ?? ""} ${fields(data.fields)}`.trim();
    n.status = data.level === "error" || data.level === "critical" ? "failed" : null;
  },
};

/** The rows a view shows: nodes in tree order, skipping the children of collapsed nodes. */
export function visibleRows(root) {
  const rows = [];
  const stack = [root];
  while (stack.length) {
    const n = stack.pop();
    rows.push(n);
    if (n.expanded) for (let i = n.children.length - 1; i >= 0; i -= 1) stack.push(n.children[i]);
  }
  return rows;
}
