// The dashboard's entry point: the API client, the token dialog, and a hash router (#/runs,
// #/runs/<id>, #/agents[/<name>[/<instance>[/<session>]]], #/dispatches) mounting one page at a time; each page
// returns a function that stops what it started (streams, timers) when the user leaves it.

import { Api, ApiError } from "./api.js";
import { agentsPage } from "./agents.js";
import { dispatchesPage } from "./dispatches.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

// The API sits one level above the dashboard: /ui/ → "", /ai/ui/ → "/ai".
const base = new URL("..", location.href).pathname.replace(/\/$/, "");
const api = new Api(base);
const main = document.getElementById("main");
const conn = document.getElementById("conn");
const forget = document.getElementById("forget");

const setConn = (state) => {
  conn.textContent = state === "reconnecting" ? "Reconnecting…" : state === "live" ? "● live" : "";
  conn.dataset.state = state;
};

// One dialog for every request that met a 401 at the same time.
let asking = null;
api.askToken = (refused) => {
  asking ??= askToken(refused).finally(() => {
    asking = null;
  });
  return asking;
};

function askToken(refused) {
  const dialog = document.getElementById("auth");
  const form = document.getElementById("auth-form");
  const input = document.getElementById("auth-token");
  const error = document.getElementById("auth-error");
  error.hidden = !refused;
  error.textContent = refused ? "The server did not accept that token." : "";
  input.value = "";
  return new Promise((resolve) => {
    const submit = (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      api.token = token;
      forget.hidden = false;
      form.removeEventListener("submit", submit);
      dialog.close();
      resolve();
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", (e) => e.preventDefault()); // no data without a token
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

forget.hidden = !api.token;
forget.addEventListener("click", () => {
  api.token = null;
  forget.hidden = true;
  route();
});

const ROUTES = [
  [/^#\/runs\/([^?]+)$/, (m) => (ctx) => runPage(main, ctx, decodeURIComponent(m[1]))],
  [/^#\/agents(?:\/([^/?]+)(?:\/([^/?]+)(?:\/([^/?]+))?)?)?$/, (m) => (ctx) => agentsPage(main, ctx, ...[1, 2, 3].map((i) => (m[i] ? decodeURIComponent(m[i]) : null)))],
  [/^#\/dispatches(?:\?(.*))?$/, (m) => (ctx) => dispatchesPage(main, ctx, new URLSearchParams(m[1] ?? ""))],
  [/^(?:#\/?(?:runs)?)?(?:\?(.*))?$/, (m) => (ctx) => runsPage(main, ctx, new URLSearchParams(m[1] ?? ""))],
];

let leave = null;

function route() {
  leave?.();
  leave = null;
  const hash = location.hash;
  let mount = null;
  for (const [pattern, page] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      mount = page(m);
      break;
    }
  }
  const section = hash.startsWith("#/agents") ? "agents" : hash.startsWith("#/dispatches") ? "dispatches" : "runs";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!mount) {
    main.replaceChildren(Object.assign(document.createElement("p"), { textContent: "No such page." }));
    return;
  }
  leave = mount({ api, setConn });
  document.title = `PyFlue · ${section}`;
}

async function probeDispatches() {
  try {
    await api.get("/dispatches?limit=1");
    document.querySelector('nav a[data-page="dispatches"]').hidden = false;
  } catch (error) {
    // 404: this server has no dispatch routes; the page stays hidden.
    if (!(error instanceof ApiError)) console.warn("dispatches:", error);
  }
}

window.addEventListener("hashchange", route);
route();
probeDispatches();
