// Agents: the project's agents, and a prompt box for one instance/session of an agent whose
// answer streams in (POST /agents/{name}/{id} with Accept: text/event-stream). The transcript
// shows this tab's exchanges: the user's message, tool calls and results, the streamed answer.

import { errorText, fmtDuration, fmtTokens, h, json, shorten, usageTitle } from "./dom.js";

export function agentsPage(main, { api }, name) {
  const controller = new AbortController();
  const signal = controller.signal;
  const list = h("ul", { class: "agent-list" });
  const panel = h("section", { class: "agent-panel", "aria-live": "off" });
  main.replaceChildren(h("h1", { text: "Agents" }), h("div", { class: "agents" }, h("nav", { "aria-label": "Agents" }, list), panel));

  api.get("/agents", { signal }).then(
    (body) => {
      list.replaceChildren(
        ...body.agents.map((a) =>
          h("li", {}, h("a", { href: `#/agents/${encodeURIComponent(a.name)}`, "aria-current": a.name === name ? "page" : null, text: a.name })),
        ),
      );
      if (!body.agents.length) panel.replaceChildren(h("p", { class: "muted", text: "This project has no agents." }));
      const chosen = body.agents.find((a) => a.name === name) ?? (name ? null : body.agents[0]);
      if (chosen) agentPanel(panel, api, chosen, signal);
      else if (name) panel.replaceChildren(h("p", { class: "error", text: `No agent named ${name}.` }));
    },
    (error) => {
      if (!signal.aborted) panel.replaceChildren(h("p", { class: "error", role: "alert", text: errorText(error) }));
    },
  );
  return () => controller.abort();
}

function agentPanel(panel, api, agent, pageSignal) {
  let running = null; // AbortController of the prompt in flight
  const instance = h("input", { id: "p-instance", value: sessionStorage.getItem(`pyflue.instance.${agent.name}`) ?? "dashboard", required: true, maxlength: "256" });
  const session = h("input", { id: "p-session", value: "default", required: true, maxlength: "256" });
  const message = h("textarea", { id: "p-message", rows: "3", required: true, placeholder: "Ask something… (Ctrl+Enter sends)" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", disabled: true, onclick: onStop }, "Stop");
  const transcript = h("ol", { class: "transcript", "aria-live": "polite", "aria-label": "Conversation" });
  message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  const form = h(
    "form",
    { class: "prompt card", onsubmit: onSend },
    h("div", { class: "row" }, h("label", {}, "Instance ", instance), h("label", {}, "Session ", session)),
    h("label", { class: "block" }, "Message", message),
    h("div", { class: "actions" }, stop, send),
  );
  panel.replaceChildren(
    h("h2", { text: agent.name }),
    agent.description ? h("p", { class: "description", text: agent.description }) : null,
    form,
    transcript,
  );
  message.focus();

  async function onSend(e) {
    e.preventDefault();
    const text = message.value.trim();
    if (!text || running) return;
    const id = instance.value.trim();
    const sessionId = session.value.trim() || "default";
    sessionStorage.setItem(`pyflue.instance.${agent.name}`, id);
    message.value = "";
    running = new AbortController();
    pageSignal.addEventListener("abort", () => running?.abort(), { once: true });
    send.disabled = true;
    stop.disabled = false;
    transcript.append(h("li", { class: "msg user" }, h("span", { class: "who", text: `you → ${id} / ${sessionId}` }), h("div", { class: "body", text })));
    const answer = h("div", { class: "body streaming" });
    const meta = h("div", { class: "meta muted" });
    const steps = h("ul", { class: "steps" });
    const item = h("li", { class: "msg assistant", dataset: { deltas: "0" } }, h("span", { class: "who", text: agent.name }), steps, answer, meta);
    transcript.append(item);
    const tools = new Map();
    let deltas = 0;
    let pending = "";
    let frame = 0;
    const flush = () => {
      frame = 0;
      answer.append(pending); // a text node: model text is never parsed as HTML
      pending = "";
      item.dataset.deltas = String(deltas);
      item.scrollIntoView({ block: "nearest" });
    };
    try {
      const path = `/agents/${encodeURIComponent(agent.name)}/${encodeURIComponent(id)}`;
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
          if (frame) {
            cancelAnimationFrame(frame);
            flush();
          }
          if (!answer.textContent) answer.textContent = r.text;
          meta.textContent = `${r.model} · ${r.finish_reason} · ${fmtTokens(r.usage) || 0} tokens`;
          meta.title = usageTitle(r.usage);
          item.dataset.done = "true";
        } else if (m.event === "error") {
          item.append(h("p", { class: "error", role: "alert", text: errorText(m.data.error ?? m.data) }));
          item.dataset.done = "error";
        } else if (m.event === "operation_end" && !ev.parent_id && ev.data?.duration_ms !== undefined) {
          meta.dataset.duration = fmtDuration(ev.data.duration_ms);
        }
      }
    } catch (error) {
      if (!running.signal.aborted) item.append(h("p", { class: "error", role: "alert", text: errorText(error) }));
      else item.append(h("p", { class: "muted", text: "Stopped." }));
    } finally {
      if (frame) {
        cancelAnimationFrame(frame);
        flush();
      }
      answer.classList.remove("streaming");
      running = null;
      send.disabled = false;
      stop.disabled = true;
      if (!pageSignal.aborted) message.focus();
    }
  }

  async function onStop() {
    // Closing the stream cancels the operation on the server (the core's stream does, when closed).
    running?.abort();
  }
}
