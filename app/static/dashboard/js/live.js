// The live channel (GET /_api/live, docs/live.md) in its JSON form, with the session
// cookie. Topics: "record" (every 0x01 frame: {generation, record, bytes}), the
// broadcast topics by name ("metrics", "alert", "security", "package", "config"),
// "error" (error frames) and "status" ("open" / "closed").
export class Live {
  constructor() {
    this.handlers = new Map();
    this.current = null;
    this.closed = false;
    this.delay = 500;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/_api/live`, ["r13.json.v1"]);
    this.ws = ws;
    ws.addEventListener("open", () => { this.delay = 500; this.emit("status", "open"); });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", () => {
      this.emit("status", "closed");
      if (this.closed) return;
      setTimeout(() => { if (!this.closed) this.connect(); }, this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    });
  }

  receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    if (frame.type === "config") {
      const bytes = [];
      for (let i = 0; i < frame.record.length; i += 2) bytes.push(parseInt(frame.record.slice(i, i + 2), 16));
      this.current = { generation: frame.generation, record: frame.record, bytes };
      this.emit("record", this.current);
    } else if (frame.type === "heartbeat") {
      this.send(frame);
    } else if (frame.type === "broadcast") {
      this.emit(frame.event.topic, frame.event);
    } else if (frame.type === "error") {
      this.emit("error", frame);
    }
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  on(topic, fn) {
    if (!this.handlers.has(topic)) this.handlers.set(topic, new Set());
    this.handlers.get(topic).add(fn);
    if (topic === "record" && this.current) fn(this.current);
    return () => this.handlers.get(topic).delete(fn);
  }

  emit(topic, value) {
    for (const fn of this.handlers.get(topic) || []) {
      try { fn(value); } catch (err) { console.error(err); }
    }
  }

  record() { return this.current; }

  close() { this.closed = true; if (this.ws) this.ws.close(1000); }
}
