// The dashboard's shell: login, navigation, the live channel and the ctx every section
// gets (docs/dashboard.md describes the contract).
import { el, toast } from "./dom.js";
import { createApi } from "./api.js";
import { Live } from "./live.js";

const SECTIONS = [
  "performance", "security", "configuration", "terminal", "packages", "analytics", "users",
  "hooks",
];

const state = { session: null, unmount: null, live: null, current: null };
const api = createApi(() => state.session && state.session.csrf, () => showLogin());

function ctxFor() {
  return {
    api,
    el,
    toast,
    session: () => state.session,
    live: {
      on: (topic, fn) => state.live.on(topic, fn),
      record: () => state.live.record(),
      send: (frame) => state.live.send(frame),
    },
  };
}

async function show(name) {
  if (!SECTIONS.includes(name)) name = "performance";
  if (state.unmount) {
    try { state.unmount(); } catch (err) { console.warn(err); }
    state.unmount = null;
  }
  state.current = name;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.section === name);
    if (a.dataset.section === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu").setAttribute("aria-expanded", "false");
  const root = document.getElementById("section");
  root.replaceChildren();
  root.dataset.section = name;
  const mod = await import(`./sections/${name}.js`);
  if (state.current !== name) return;
  const unmount = await mod.mount(root, ctxFor());
  if (state.current !== name) { if (typeof unmount === "function") unmount(); return; }
  state.unmount = typeof unmount === "function" ? unmount : null;
  root.dataset.ready = "1";
}

function showLogin() {
  if (state.live) { state.live.close(); state.live = null; }
  if (state.unmount) { try { state.unmount(); } catch (err) { console.warn(err); } }
  state.unmount = null;
  state.session = null;
  document.body.classList.remove("signed-in");
  document.getElementById("section").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
}

function signedIn(session) {
  state.session = session;
  document.body.classList.add("signed-in");
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = session.username;
  state.live = new Live();
  // A logout elsewhere (every session of this principal ends) closes the live channel:
  // ask whether this session still stands, and return to the login form if not.
  state.live.on("status", (status) => {
    if (status !== "closed") return;
    api("GET", "/_api/session")
      .then((now) => { if (!now.signed_in && state.session) showLogin(); })
      .catch(() => {});
  });
  show(location.hash.slice(1));
}

async function start() {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const key = String(data.get("key") || "");
    const body = key
      ? { key }
      : { username: String(data.get("username") || ""), password: String(data.get("password") || "") };
    const error = document.getElementById("login-error");
    error.textContent = "";
    try {
      const session = await api("POST", "/_api/session", body);
      form.reset();
      signedIn(session);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("DELETE", "/_api/session"); } catch (err) { toast(err.message); }
    showLogin();
  });
  document.getElementById("menu").addEventListener("click", () => {
    const nav = document.getElementById("nav");
    const open = nav.classList.toggle("open");
    document.getElementById("menu").setAttribute("aria-expanded", String(open));
  });
  window.addEventListener("hashchange", () => { if (state.session) show(location.hash.slice(1)); });
  try {
    const session = await api("GET", "/_api/session");
    if (session.signed_in) signedIn(session);
    else showLogin();
  } catch {
    showLogin();
  }
}

start();
