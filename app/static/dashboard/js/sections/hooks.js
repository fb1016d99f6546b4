// The Hooks section: every webhook, add one, remove one, send a test ping, and each hook's
// delivery log (/_api/hooks*; each change audited in r13core/hooks/service.py).
// Contract: docs/dashboard.md; webhooks: docs/webhooks.md.
import { panel, table, useStyles } from "../widgets.js";

const TYPES = ["package", "scope", "owner"];

function stamp(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export async function mount(root, ctx) {
  useStyles(ctx);
  const { el, api, toast } = ctx;
  const list = el("div", { id: "hooks-list" });
  const queue = el("p", { class: "note", id: "hooks-queue" });
  const log = el("div", { id: "hooks-log" });

  function result(status, error) {
    if (status !== null && status !== undefined) return String(status);
    return error ? `error: ${error}` : "—";
  }

  async function showLog(hook) {
    try {
      const res = await api("GET", `/_api/hooks/${encodeURIComponent(hook.id)}/deliveries?limit=50`);
      log.replaceChildren(panel(ctx, `Delivery log of ${hook.id} (${hook.type} ${hook.name})`,
        res.deliveries.length
          ? table(ctx, ["delivery", "event", "package", "state", "attempts", "last"],
            res.deliveries.map((d) => [d.id, d.event, d.package, d.state, String(d.attempts),
              result(d.last_status, d.last_error)]), { id: "hooks-deliveries" })
          : el("p", { class: "note" }, "No deliveries yet."),
        res.attempts.length
          ? table(ctx, ["time", "delivery", "attempt", "result", "ms"],
            res.attempts.map((a) => [stamp(a.at_ms), a.delivery, String(a.attempt),
              result(a.status, a.error), a.duration_ms.toFixed(1)]), { id: "hooks-attempts" })
          : el("p", { class: "note" }, "No attempts yet.")));
    } catch (err) { toast(err.message); }
  }

  async function ping(hook) {
    try {
      const res = await api("POST", `/_api/hooks/${encodeURIComponent(hook.id)}/ping`);
      toast(`Ping queued (${res.delivery})`);
    } catch (err) { toast(err.message); }
    await load();
  }

  async function remove(hook, button) {
    if (button.dataset.armed !== "1") { button.dataset.armed = "1"; button.textContent = "Confirm remove"; return; }
    try { await api("DELETE", `/_api/hooks/${encodeURIComponent(hook.id)}`); toast(`Removed ${hook.id}`); }
    catch (err) { toast(err.message); }
    log.replaceChildren();
    await load();
  }

  async function load() {
    const res = await api("GET", "/_api/hooks");
    queue.textContent = `Queue: ${res.queue.pending} pending, ${res.queue.delivered} delivered, ${res.queue.failed} failed.`;
    list.replaceChildren(res.objects.length
      ? table(ctx, ["id", "owner", "watches", "endpoint", "last delivery", "result", ""], res.objects.map((h) => [
        el("span", { dataset: { hook: h.id } }, h.id), h.owner, `${h.type} ${h.name}`, h.endpoint,
        stamp(h.last_delivery_ms), result(h.last_status, h.last_error),
        el("span", { class: "bar" },
          el("button", { class: "small", dataset: { log: h.id }, onclick: () => showLog(h) }, "Log"),
          el("button", { class: "small", dataset: { ping: h.id }, onclick: () => ping(h) }, "Ping"),
          el("button", { class: "small danger", dataset: { remove: h.id }, onclick: (e) => remove(h, e.currentTarget) }, "Remove")),
      ]), { id: "hooks-table" })
      : el("p", { class: "note" }, "No webhooks yet."));
  }

  const form = el("form", { class: "form", id: "hook-form" },
    el("label", {}, "Watches", el("select", { name: "type" }, TYPES.map((t) => el("option", { value: t }, t)))),
    el("label", {}, "Name", el("input", { name: "name", required: true, autocomplete: "off", placeholder: "pkg, @scope or user" })),
    el("label", {}, "Endpoint", el("input", { name: "endpoint", type: "url", required: true, placeholder: "https://…" })),
    el("label", {}, "Secret", el("input", { name: "secret", type: "password", required: true, autocomplete: "new-password" })),
    el("label", {}, "Owner", el("input", { name: "owner", autocomplete: "off", placeholder: "(you)" })),
    el("button", { type: "submit" }, "Add hook"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = {
      type: String(data.get("type")), name: String(data.get("name")),
      endpoint: String(data.get("endpoint")), secret: String(data.get("secret")),
    };
    if (data.get("owner")) body.owner = String(data.get("owner"));
    try {
      const hook = await api("POST", "/_api/hooks", body);
      toast(`Added ${hook.id}`);
      form.reset();
    } catch (err) { toast(err.message); }
    await load();
  });

  root.append(el("h1", {}, "Hooks"), panel(ctx, "Add a webhook", form), queue,
    panel(ctx, "Webhooks", list), log);
  await load();
}
