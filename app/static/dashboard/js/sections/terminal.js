// Terminal: xterm.js on GET /_dashboard/terminal (docs/terminal.md, r13.term.v1) with the
// session cookie. In raw mode every keystroke goes to the server as typed (history,
// completion and echo are the server's); in line mode the page edits one line and sends
// it on Enter. Rows and cols are the record's (hello, then every size message).
import { Terminal } from "../../vendor/xterm.mjs";

export function mount(root, ctx) {
  const { el } = ctx;
  const info = el("p", { class: "note", role: "status" }, "connecting…");
  const screen = el("div", { class: "terminal", id: "terminal" });
  const again = el("button", { type: "button", hidden: true, onclick: () => connect() }, "Reconnect");
  root.append(el("h1", {}, "Terminal"), info, el("div", { class: "terminal-wrap" }, screen), again);

  const term = new Terminal({
    rows: 24, cols: 80, convertEol: false, cursorBlink: true, fontSize: 13,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    theme: { background: "#0b0f14", foreground: "#d8dee6" },
  });
  term.open(screen);
  let ws = null;
  let mode = null;
  let line = "";
  let closedByUs = false;

  function connect() {
    again.hidden = true;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/_dashboard/terminal`, ["r13.term.v1"]);
    ws.addEventListener("message", (event) => receive(JSON.parse(event.data)));
    ws.addEventListener("close", (event) => {
      root.dataset.state = "closed";
      if (closedByUs) return;
      info.textContent = `disconnected (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
      again.hidden = false;
    });
    ws.addEventListener("error", () => { info.textContent = "the terminal is not available (is terminalMode 0?)"; });
  }

  function receive(msg) {
    switch (msg.type) {
      case "hello":
        mode = msg.mode;
        term.resize(msg.cols, msg.rows);
        info.textContent = `${msg.mode} mode, ${msg.rows}×${msg.cols}, as ${msg.actor}`;
        root.dataset.mode = msg.mode;
        root.dataset.state = "open";
        term.focus();
        break;
      case "screen": term.write(msg.data); break;
      case "output":
        term.write(msg.text.replace(/\n/g, "\r\n") + (msg.text ? "\r\n" : ""));
        break;
      case "prompt": line = ""; term.write(msg.text); break;
      case "clear": term.clear(); break;
      case "size":
        term.resize(msg.cols, msg.rows);
        info.textContent = `${mode} mode, ${msg.rows}×${msg.cols}`;
        break;
      case "error": term.write(`\r\n\x1b[31m${msg.text}\x1b[0m\r\n`); break;
      case "bye":
        term.write(`\r\n[${msg.reason}]\r\n`);
        info.textContent = `session over: ${msg.reason}`;
        break;
      default: break;
    }
  }

  term.onData((data) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (mode === "raw") { ws.send(JSON.stringify({ type: "keys", data })); return; }
    for (const ch of data) {
      if (ch === "\r") { term.write("\r\n"); ws.send(JSON.stringify({ type: "line", text: line })); line = ""; }
      else if (ch === "\x7f") { if (line) { line = line.slice(0, -1); term.write("\b \b"); } }
      else if (ch >= " ") { line += ch; term.write(ch); }
    }
  });

  connect();
  return () => { closedByUs = true; if (ws) ws.close(1000); term.dispose(); };
}
