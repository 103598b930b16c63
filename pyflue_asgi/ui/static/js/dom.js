// DOM helpers. Data is only ever placed with textContent / text nodes: nothing from the server is
// parsed as HTML anywhere in the dashboard.

/** An element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value); // CSSOM: allowed by the page's CSP

    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children (nodes, or anything else as text). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A <pre> holding a JSON value (or a string as it is). */
export function pre(value, cls = "json") {
  return h("pre", { class: cls, text: typeof value === "string" ? value : json(value) });
}

export function json(value) {
  try {
    return JSON.stringify(value, null, 2) ?? "null";
  } catch {
    return String(value);
  }
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date();
  const same = d.toDateString() === today.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return same ? time : `${d.toLocaleDateString()} ${time}`;
}

export function tokens(usage) {
  if (!usage) return 0;
  return (usage.input_tokens ?? 0) + (usage.output_tokens ?? 0);
}

export function fmtTokens(usage) {
  const n = tokens(usage);
  if (!n) return "";
  return n >= 10000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function usageTitle(usage) {
  if (!usage) return "";
  return `input ${usage.input_tokens ?? 0}, output ${usage.output_tokens ?? 0}, cache read ${usage.cache_read_tokens ?? 0}, cache write ${usage.cache_write_tokens ?? 0}, requests ${usage.requests ?? 0}`;
}

export function errorText(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  const type = error.type ?? "Error";
  return error.message ? `${type}: ${error.message}` : type;
}

export function shorten(text, max = 120) {
  const s = String(text ?? "").replace(/\s+/g, " ").trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).replace(/[^a-z]/g, "")}`, text: status ?? "" });
}

/** A definition list from [term, value] pairs; values are nodes or text; empty ones are left out. */
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(h("dt", { text: term }), h("dd", {}, value));
  }
  return dl;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
