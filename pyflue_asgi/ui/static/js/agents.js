// Agents: the project's agents; an agent's instances (a page at a time) and an instance's sessions,
// read from the session store; a session's stored conversation as a transcript (user, assistant,
// tool calls with their arguments, tool results, compaction summaries); and a prompt box whose
// answer streams in (POST /agents/{name}/{id} with Accept: text/event-stream), after which the
// transcript is read again from the store. Address: #/agents/<agent>[/<instance>[/<session>]],
// each part URI-encoded, so a view can be bookmarked and every choice is a real link.

import { errorText, fmtDuration, fmtTokens, h, json, shorten, usageTitle } from "./dom.js";

const INSTANCE_PAGE = 50;
const MESSAGE_PAGE = 200;

/** The hash of an agent view; parts are encoded one by one (ids may hold "/", "#", "?"). */
export function agentHref(name, instance = null, session = null) {
  return "#/agents/" + [name, instance, session].filter((p) => p !== null).map(encodeURIComponent).join("/");
}

export function agentsPage(main, { api }, name, instance = null, session = null) {
  const controller = new AbortController();
  const signal = controller.signal;
  const list = h("ul", { class: "agent-list" });
  const panel = h("section", { class: "agent-panel", "aria-live": "off" });
  main.replaceChildren(h("h1", { text: "Agents" }), h("div", { class: "agents" }, h("nav", { "aria-label": "Agents" }, list), panel));

  api.get("/agents", { signal }).then(
    (body) => {
      list.replaceChildren(
        ...body.agents.map((a) =>
          h("li", {}, h("a", { href: agentHref(a.name), "aria-current": a.name === name ? "page" : null, text: a.name })),
        ),
      );
      if (!body.agents.length) panel.replaceChildren(h("p", { class: "muted", text: "This project has no agents." }));
      const chosen = body.agents.find((a) => a.name === name) ?? (name ? null : body.agents[0]);
      if (chosen) agentPanel(panel, api, chosen, chosen.name === name ? instance : null, chosen.name === name ? session : null, signal);
      else if (name) panel.replaceChildren(h("p", { class: "error", text: `No agent named ${name}.` }));
    },
    (error) => {
      if (!signal.aborted) panel.replaceChildren(h("p", { class: "error", role: "alert", text: errorText(error) }));
    },
  );
  return () => controller.abort();
}

function agentPanel(panel, api, agent, chosenInstance, chosenSession, pageSignal) {
  const base = `/agents/${encodeURIComponent(agent.name)}`;
  let selected = { instance: chosenInstance, session: chosenSession };
  let running = null; // AbortController of the prompt in flight

  // -- instances and sessions ------------------------------------------------------------------
  const instances = h("ul", { class: "pick-list", id: "instances", "aria-label": "Instances" });
  const moreInstances = h("button", { type: "button", class: "small", hidden: true, onclick: () => loadInstances(nextInstances) }, "More instances");
  const sessions = h("ul", { class: "pick-list", id: "sessions", "aria-label": "Sessions" });
  let nextInstances = null;

  async function loadInstances(after = null) {
    const query = new URLSearchParams({ limit: String(INSTANCE_PAGE) });
    if (after !== null) query.set("after", after);
    try {
      const page = await api.get(`${base}/instances?${query}`, { signal: pageSignal });
      if (after === null) instances.replaceChildren();
      for (const id of page.instances) instances.append(pick(agentHref(agent.name, id), id, id === selected.instance, "instance"));
      if (!instances.children.length) instances.append(h("li", { class: "muted", text: "No stored conversations yet." }));
      nextInstances = page.next_after;
      moreInstances.hidden = nextInstances === null;
    } catch (error) {
      if (!pageSignal.aborted) instances.replaceChildren(h("li", { class: "error", role: "alert", text: errorText(error) }));
    }
  }

  async function loadSessions() {
    if (selected.instance === null) {
      sessions.replaceChildren(h("li", { class: "muted", text: "Pick an instance." }));
      return;
    }
    try {
      const body = await api.get(`${base}/${encodeURIComponent(selected.instance)}/sessions`, { signal: pageSignal });
      sessions.replaceChildren(
        ...body.sessions.map((s) => pick(agentHref(agent.name, selected.instance, s), s, s === selected.session, "session")),
      );
      if (!body.sessions.length) sessions.append(h("li", { class: "muted", text: "No sessions with messages." }));
    } catch (error) {
      if (!pageSignal.aborted) sessions.replaceChildren(h("li", { class: "error", role: "alert", text: errorText(error) }));
    }
  }

  // -- the stored transcript -------------------------------------------------------------------
  const heading = h("h3", { id: "transcript-title" });
  const transcript = h("ol", { class: "transcript", "aria-labelledby": "transcript-title" });
  const moreMessages = h("button", { type: "button", class: "small", hidden: true, onclick: () => loadMessages(nextMessage) }, "More messages");
  let nextMessage = null;

  async function loadMessages(after = 0) {
    const { instance, session } = selected;
    if (instance === null || session === null) {
      heading.textContent = "Transcript";
      transcript.replaceChildren(h("li", { class: "muted", text: "Pick an instance and a session to read its conversation." }));
      moreMessages.hidden = true;
      return;
    }
    heading.textContent = `Transcript · ${instance} / ${session}`;
    const path = `${base}/${encodeURIComponent(instance)}/sessions/${encodeURIComponent(session)}/messages?after=${after}&limit=${MESSAGE_PAGE}`;
    try {
      const page = await api.get(path, { signal: pageSignal });
      if (after === 0) transcript.replaceChildren();
      transcript.dataset.version = String(page.version);
      for (const message of page.messages) transcript.append(...storedMessage(message, agent.name));
      if (!transcript.children.length) transcript.append(h("li", { class: "muted", text: "No messages in this session yet." }));
      nextMessage = page.next_after;
      moreMessages.hidden = nextMessage === null;
    } catch (error) {
      if (!pageSignal.aborted) transcript.replaceChildren(h("li", { class: "error", role: "alert", text: errorText(error) }));
    }
  }

  // -- the prompt box --------------------------------------------------------------------------
  const remembered = sessionStorage.getItem(`pyflue.instance.${agent.name}`) ?? "dashboard";
  const instanceInput = h("input", { id: "p-instance", value: chosenInstance ?? remembered, required: true, maxlength: "256" });
  const sessionInput = h("input", { id: "p-session", value: chosenSession ?? "default", required: true, maxlength: "256" });
  const message = h("textarea", { id: "p-message", rows: "3", required: true, placeholder: "Ask something… (Ctrl+Enter sends)" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", disabled: true, onclick: () => running?.abort() }, "Stop");
  const status = h("p", { id: "p-status", class: "meta muted", role: "status" });
  const live = h("ol", { class: "transcript live", "aria-live": "polite", "aria-label": "Answer in progress" });
  message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  const form = h(
    "form",
    { class: "prompt card", onsubmit: onSend },
    h("div", { class: "row" }, h("label", {}, "Instance ", instanceInput), h("label", {}, "Session ", sessionInput)),
    h("label", { class: "block" }, "Message", message),
    h("div", { class: "actions" }, status, stop, send),
  );

  panel.replaceChildren(
    h("h2", { text: agent.name }),
    agent.description ? h("p", { class: "description", text: agent.description }) : null,
    h(
      "div",
      { class: "browse" },
      h("section", { class: "card pick" }, h("h3", { text: "Instances" }), instances, moreInstances),
      h("section", { class: "card pick" }, h("h3", { text: "Sessions" }), sessions),
    ),
    form,
    h("section", { class: "conversation" }, heading, transcript, moreMessages, live),
  );

  Promise.all([loadInstances(), loadSessions(), loadMessages()]).then(() => {
    if (pageSignal.aborted) return;
    // Keyboard users keep their place: the link they followed is focused again in the new view.
    const current = selected.session !== null ? sessions : selected.instance !== null ? instances : null;
    const link = current?.querySelector('a[aria-current="true"]');
    if (link) link.focus();
    else message.focus();
  });

  async function onSend(e) {
    e.preventDefault();
    const text = message.value.trim();
    if (!text || running) return;
    const id = instanceInput.value.trim();
    const sessionId = sessionInput.value.trim() || "default";
    sessionStorage.setItem(`pyflue.instance.${agent.name}`, id);
    message.value = "";
    running = new AbortController();
    pageSignal.addEventListener("abort", () => running?.abort(), { once: true });
    send.disabled = true;
    stop.disabled = false;
    status.textContent = "Answering…";
    delete status.dataset.done;
    live.replaceChildren(h("li", { class: "msg user" }, h("span", { class: "who", text: `you → ${id} / ${sessionId}` }), h("div", { class: "body", text })));
    const answer = h("div", { class: "body streaming" });
    const steps = h("ul", { class: "steps" });
    const item = h("li", { class: "msg assistant" }, h("span", { class: "who", text: agent.name }), steps, answer);
    live.append(item);
    const tools = new Map();
    let deltas = 0;
    let pending = "";
    let frame = 0;
    let outcome = null; // "done" | "error" | "stopped"
    let summary = "";
    let title = "";
    const flush = () => {
      frame = 0;
      answer.append(pending); // a text node: model text is never parsed as HTML
      pending = "";
      item.scrollIntoView({ block: "nearest" });
    };
    try {
      const path = `${base}/${encodeURIComponent(id)}`;
      for await (const m of api.events("POST", path, { body: { message: text, session: sessionId }, signal: running.signal })) {
        const ev = m.data;
        if (m.event === "text_delta") {
          if (ev.parent_id) continue; // a subagent's own words: shown with its task, not as the answer
          deltas += 1;
          pending += ev.data?.text ?? "";
          if (!frame) frame = requestAnimationFrame(flush);
        } else if (m.event === "tool_start") {
          const d = ev.data ?? {};
          const li = h("li", { class: ev.parent_id ? "step tool sub" : "step tool" }, h("span", { class: "tl-kind k-tool", text: "tool" }), ` ${d.tool} `, h("code", { text: shorten(JSON.stringify(d.args), 160) }));
          tools.set(`${ev.operation_id}\n${d.call_id}`, li);
          steps.append(li);
        } else if (m.event === "tool_end") {
          const d = ev.data ?? {};
          const li = tools.get(`${ev.operation_id}\n${d.call_id}`);
          const out = d.error ? errorText(d.error) : typeof d.result === "string" ? d.result : json(d.result);
          li?.append(h("div", { class: d.error ? "result err" : "result", text: `→ ${shorten(out, 400)}` }));
        } else if (m.event === "compaction_end") {
          steps.append(h("li", { class: "step" }, h("span", { class: "tl-kind k-compaction", text: "compaction" }), ` ${ev.data?.tokens_before} → ${ev.data?.tokens_after} tokens`));
        } else if (m.event === "result") {
          const r = m.data.result;
          summary = `${r.model} · ${r.finish_reason} · ${fmtTokens(r.usage) || 0} tokens`;
          title = usageTitle(r.usage);
          outcome = "done";
        } else if (m.event === "error") {
          summary = errorText(m.data.error ?? m.data);
          outcome = "error";
        } else if (m.event === "operation_end" && !ev.parent_id && ev.data?.duration_ms !== undefined) {
          title = `${fmtDuration(ev.data.duration_ms)}${title ? ` · ${title}` : ""}`;
        }
      }
    } catch (error) {
      outcome = running.signal.aborted ? "stopped" : "error";
      summary = running.signal.aborted ? "Stopped." : errorText(error);
    } finally {
      if (frame) {
        cancelAnimationFrame(frame);
        flush();
      }
      answer.classList.remove("streaming");
    }
    if (pageSignal.aborted) return;
    // The store now holds the exchange: show the session as stored, and list it if it is new.
    selected = { instance: id, session: sessionId };
    history.replaceState(null, "", agentHref(agent.name, id, sessionId));
    await Promise.all([loadInstances(), loadSessions(), loadMessages()]);
    if (outcome === "done") live.replaceChildren();
    status.textContent = summary || (outcome === "done" ? "Answered." : "No answer.");
    status.title = title;
    status.className = outcome === "error" ? "meta error" : "meta muted";
    status.dataset.done = outcome ?? "error";
    status.dataset.deltas = String(deltas);
    running = null;
    send.disabled = false;
    stop.disabled = true;
    message.focus();
  }
}

/** A link of the instance or session list; the chosen one is marked for eyes and screen readers. */
function pick(href, label, current, kind) {
  return h("li", {}, h("a", { href, class: `pick-${kind}`, "aria-current": current ? "true" : null, dataset: { id: label }, text: label }));
}

/** The transcript entries of one stored message (a tool-result message gives one per result). */
function storedMessage(message, agentName) {
  const seq = String(message.seq);
  if (message.compaction_summary !== undefined && message.compaction_summary !== null) {
    return [
      h(
        "li",
        { class: "msg summary", dataset: { seq } },
        h("span", { class: "who" }, h("span", { class: "tl-kind k-compaction", text: "compaction summary" }), " earlier messages, summarised"),
        h("div", { class: "body", text: message.compaction_summary.trim() }),
      ),
    ];
  }
  if (message.role === "user") {
    const results = message.parts.filter((p) => p.type === "tool_result");
    const others = message.parts.filter((p) => p.type !== "tool_result");
    const entries = results.map((p) =>
      h(
        "li",
        { class: p.is_error ? "msg tool-result err" : "msg tool-result", dataset: { seq, call: p.call_id } },
        h("span", { class: "who" }, h("span", { class: "tl-kind k-tool", text: "tool result" }), ` ${p.name}`, p.is_error ? " (error)" : ""),
        h("pre", { class: "result", text: p.content }),
      ),
    );
    if (others.length) {
      entries.unshift(h("li", { class: "msg user", dataset: { seq } }, h("span", { class: "who", text: "user" }), ...others.map(partNode)));
    }
    return entries;
  }
  return [h("li", { class: "msg assistant", dataset: { seq } }, h("span", { class: "who", text: agentName }), ...message.parts.map(partNode))];
}

function partNode(part) {
  if (part.type === "text") return h("div", { class: "body", text: part.text });
  if (part.type === "image") return h("div", { class: "body muted", text: `[image ${part.mime_type ?? ""}${part.url ? ` ${part.url}` : ""}]` });
  if (part.type === "thinking") {
    return h("details", { class: "thinking" }, h("summary", { text: "thinking" }), h("div", { class: "body muted", text: part.text || "(redacted)" }));
  }
  if (part.type === "tool_call") {
    return h(
      "div",
      { class: "tool-call", dataset: { call: part.id } },
      h("span", { class: "tl-kind k-tool", text: "tool call" }),
      ` ${part.name} `,
      h("pre", { class: "args", text: json(part.args ?? {}) }),
    );
  }
  return h("pre", { class: "body", text: json(part) });
}
