// The HTTP API as the dashboard uses it: JSON requests with the bearer token, and server-sent
// events read with fetch() (EventSource cannot send an Authorization header), resuming with
// Last-Event-ID after a dropped connection.

import { sleep } from "./dom.js";

const TOKEN_KEY = "pyflue.token";

export class ApiError extends Error {
  constructor(status, type, message, details) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details;
  }
}

export class Api {
  /** base: the API's path prefix ("" when the app is served at the root, "/ai" under a mount). */
  constructor(base) {
    this.base = base;
    /** async () => void: ask the user for a token (set by main.js); called on a 401. */
    this.askToken = null;
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  url(path) {
    return this.base + path;
  }

  /** fetch() with the token; a 401 asks for a token and tries again; other errors throw ApiError. */
  async request(method, path, { body, accept = "application/json", headers = {}, signal } = {}) {
    for (;;) {
      const all = { Accept: accept, ...headers };
      if (body !== undefined) all["Content-Type"] = "application/json";
      const token = this.token;
      if (token) all.Authorization = `Bearer ${token}`;
      const response = await fetch(this.url(path), {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
      if (response.status === 401 && this.askToken) {
        await this.askToken(Boolean(token));
        continue;
      }
      if (!response.ok) throw await apiError(response);
      return response;
    }
  }

  async get(path, options) {
    return (await this.request("GET", path, options)).json();
  }

  async post(path, body, options = {}) {
    return (await this.request("POST", path, { ...options, body })).json();
  }

  /** The SSE messages of one request ({id, event, data}); ends when the server closes. */
  async *events(method, path, { body, headers, signal } = {}) {
    const response = await this.request(method, path, {
      body,
      headers,
      signal,
      accept: "text/event-stream",
    });
    yield* readSse(response, signal);
  }

  /**
   * Follow a resumable stream (GET, id = seq) until onMessage returns true or signal aborts.
   * A dropped connection is retried with Last-Event-ID, backing off up to 10 s; onState hears
   * "live", "reconnecting" and "ended". An error the server answered (4xx) goes to onError.
   */
  async follow(path, { onMessage, onState = () => {}, onError = () => {}, signal }) {
    let last = null;
    let delay = 250;
    while (!signal.aborted) {
      try {
        const headers = last === null ? {} : { "Last-Event-ID": String(last) };
        const response = await this.request("GET", path, { accept: "text/event-stream", headers, signal });
        onState("live");
        for await (const message of readSse(response, signal)) {
          delay = 250;
          if (message.id !== undefined) last = Number(message.id);
          if (onMessage(message)) {
            onState("ended");
            return;
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status < 500) {
          onError(error);
          return;
        }
      }
      if (signal.aborted) return;
      onState("reconnecting");
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
    }
  }
}

async function apiError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  const error = body?.error ?? {};
  return new ApiError(
    response.status,
    error.type ?? `HTTP ${response.status}`,
    error.message ?? response.statusText,
    error.details,
  );
}

/** Parse a text/event-stream body incrementally into {id?, event, data} messages. */
export async function* readSse(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", stop, { once: true });
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.includes("\r") ? value.replace(/\r\n?/g, "\n") : value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = parseBlock(block);
        if (message) yield message;
      }
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
  }
}

function parseBlock(block) {
  let id;
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    parsed = data.join("\n");
  }
  // Custom event types that are not plain tokens come without an `event:` line; their type is in the data.
  if (event === "message" && parsed && typeof parsed.type === "string") event = parsed.type;
  return { id, event, data: parsed };
}
