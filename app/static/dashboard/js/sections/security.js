// The Security section: status, rate-limit violations, auth failures, anomalies, active
// blocks (unblock), API keys (create, rotate, revoke; the secret shown once), the audit
// log (paged, filterable) and live security events. Data: /_api/security/*, the live
// channel's "security" topic. Contract: docs/dashboard.md.
import { panel, table, tile, useStyles, when } from "../widgets.js";

const PAGE = 25;

export async function mount(root, ctx) {
  useStyles(ctx);
  const { el, api, toast } = ctx;
  const status = el("div", { class: "tiles", id: "security-status" });
  const offenders = el("div", { class: "grid" });
  const blocks = el("div", { id: "security-blocks" });
  const keys = el("div", { id: "security-keys" });
  const secretBox = el("div", { id: "key-secret" });
  const audit = el("div", { id: "security-audit" });
  const events = el("ul", { class: "events", id: "security-events" });

  async function loadStatus() {
    const m = await api("GET", "/_api/security/metrics");
    const state = (n) => (n > 0 ? "warn" : "ok");
    status.replaceChildren(
      tile(ctx, "auth failures", m.authFailures.total, state(m.authFailures.total), "auth-failures"),
      tile(ctx, "rate-limit violations", m.rateLimitViolations.total,
        state(m.rateLimitViolations.total), "rate-limited"),
      tile(ctx, "anomalies", m.anomalies.total, state(m.anomalies.total), "anomalies"),
      tile(ctx, "active blocks", m.activeBlocks.length, m.activeBlocks.length ? "bad" : "ok", "blocks"),
      tile(ctx, "blocked requests", m.blockedRequests, state(m.blockedRequests), "blocked-requests"),
      tile(ctx, "requests", m.requests.total, "none", "requests"),
    );
    const byClient = (title, list) => panel(ctx, title, list.length
      ? table(ctx, ["client", "count"], list.map((c) => [c.name, String(c.count)]))
      : el("p", { class: "note" }, "None."));
    const kinds = Object.entries(m.anomalies.byKind || {});
    offenders.replaceChildren(
      byClient("Auth failures by client", m.authFailures.byClient),
      byClient("Rate-limit violations by client", m.rateLimitViolations.byClient),
      panel(ctx, "Anomalies by kind", kinds.length
        ? table(ctx, ["kind", "count"], kinds.map(([k, v]) => [k, String(v)]))
        : el("p", { class: "note" }, "None.")),
    );
    blocks.replaceChildren(m.activeBlocks.length
      ? table(ctx, ["client", "kind", "reason", "until", ""], m.activeBlocks.map((b) => [
        b.ip, b.kind, b.reason, b.expires ? when(b.expires) : "until lifted",
        el("button", { class: "small", onclick: () => unblock(b.ip) }, "Unblock"),
      ]))
      : el("p", { class: "note" }, "No address is blocked."));
  }

  async function unblock(ip) {
    try {
      await api("DELETE", `/_api/security/blocks/${ip.split("/").map(encodeURIComponent).join("/")}`);
      toast(`Unblocked ${ip}`);
    } catch (err) { toast(err.message); }
    await loadStatus();
  }

  // Revoked keys (dashboard sessions that ended among them) are hidden unless asked for.
  const showRevoked = el("input", { type: "checkbox", id: "show-revoked" });
  showRevoked.addEventListener("change", () => { loadKeys().catch((err) => toast(err.message)); });
  async function loadKeys() {
    const { keys: all } = await api("GET", "/_api/security/keys");
    const list = showRevoked.checked ? all : all.filter((k) => !k.revoked);
    keys.replaceChildren(table(ctx,
      ["id", "permission", "owner", "expires", "limit", "CIDR", "packages", "last used", ""],
      list.map((k) => [
        el("span", { dataset: { key: k.id } }, k.id, k.revoked ? el("span", { class: "badge bad" }, "revoked") : null),
        k.permission, k.owner || "—", k.expires ? when(k.expires) : "never",
        k.rateLimit ? String(k.rateLimit) : "default", k.cidr.join(", ") || "any",
        k.packages.join(", ") || "all", k.lastUsed ? when(k.lastUsed) : "never",
        k.revoked ? "" : el("span", { class: "bar" },
          el("button", { class: "small", onclick: () => rotate(k.id) }, "Rotate"),
          el("button", { class: "small danger", dataset: { revoke: k.id }, onclick: (e) => revoke(k.id, e.currentTarget) }, "Revoke")),
      ]), { id: "keys-table", class: "wide" }));
  }

  function showSecret(info) {
    const code = el("code", { id: "new-key-secret" }, info.key);
    const copy = el("button", { class: "small", onclick: async () => {
      try { await navigator.clipboard.writeText(info.key); toast("Copied"); } catch { toast("Select and copy the key"); }
    } }, "Copy");
    secretBox.replaceChildren(el("div", { class: "secret", role: "alert" },
      el("strong", {}, `Key ${info.id}: shown once, copy it now`), code,
      el("span", { class: "bar" }, copy,
        el("button", { class: "small", onclick: () => secretBox.replaceChildren() }, "Done"))));
  }

  async function rotate(id) {
    try { showSecret(await api("POST", `/_api/security/keys/${encodeURIComponent(id)}/rotate`)); }
    catch (err) { toast(err.message); }
    await loadKeys();
  }

  async function revoke(id, button) {
    // Two clicks, no dialog: the first arms the button, the second revokes.
    if (button.dataset.armed !== "1") { button.dataset.armed = "1"; button.textContent = "Confirm revoke"; return; }
    try { await api("DELETE", `/_api/security/keys/${encodeURIComponent(id)}`); toast(`Revoked ${id}`); }
    catch (err) { toast(err.message); }
    await loadKeys();
  }

  const form = el("form", { class: "form", id: "key-form" },
    el("label", {}, "Id", el("input", { name: "id", required: true, autocomplete: "off" })),
    el("label", {}, "Permission", el("select", { name: "permissions" },
      el("option", { value: "read" }, "read"), el("option", { value: "write" }, "write"),
      el("option", { value: "admin" }, "admin"))),
    el("label", {}, "Expires in", el("input", { name: "expiresIn", placeholder: "30d, 12h or never" })),
    el("label", {}, "Rate limit /min", el("input", { name: "rateLimit", inputmode: "numeric" })),
    el("label", {}, "CIDR", el("input", { name: "cidr", placeholder: "10.0.0.0/8, ..." })),
    el("label", {}, "Packages", el("input", { name: "packages", placeholder: "@team/*, ..." })),
    el("label", {}, "Description", el("input", { name: "description" })),
    el("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const list = (name) => String(data.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
    const body = { id: String(data.get("id")), permissions: String(data.get("permissions")),
      cidr: list("cidr"), packages: list("packages"), description: String(data.get("description") || "") };
    if (data.get("expiresIn")) body.expiresIn = String(data.get("expiresIn"));
    if (data.get("rateLimit")) body.rateLimit = Number(data.get("rateLimit"));
    try {
      showSecret(await api("POST", "/_api/security/keys", body));
      form.reset();
    } catch (err) { toast(err.message); }
    await loadKeys();
  });

  // The audit log: newest first, paged by id, filtered by action and actor.
  const filter = el("form", { class: "bar", id: "audit-filter" },
    el("input", { name: "action", placeholder: "action (key.create, user.*)", "aria-label": "Action" }),
    el("input", { name: "actor", placeholder: "actor", "aria-label": "Actor" }),
    el("button", { type: "submit" }, "Filter"));
  let pages = [null];
  async function loadAudit() {
    const data = new FormData(filter);
    const params = new URLSearchParams({ limit: String(PAGE) });
    for (const name of ["action", "actor"]) if (data.get(name)) params.set(name, String(data.get(name)));
    const before = pages[pages.length - 1];
    if (before !== null) params.set("before", String(before));
    const page = await api("GET", `/_api/security/audit?${params}`);
    const older = el("button", { class: "small", disabled: page.next === null, onclick: () => {
      pages.push(page.next); loadAudit();
    } }, "Older");
    const newer = el("button", { class: "small", disabled: pages.length === 1, onclick: () => {
      pages.pop(); loadAudit();
    } }, "Newer");
    audit.replaceChildren(
      table(ctx, ["#", "time", "actor", "action", "target", "client", "detail"], page.events.map((e) => [
        String(e.id), when(e.time), e.actor, e.action, e.target, e.ip || "—",
        Object.keys(e.detail || {}).length ? JSON.stringify(e.detail) : "",
      ]), { id: "audit-table", class: "wide" }),
      el("div", { class: "pager" }, newer, older));
  }
  filter.addEventListener("submit", (event) => { event.preventDefault(); pages = [null]; loadAudit(); });

  root.append(
    el("h1", {}, "Security"),
    status,
    offenders,
    panel(ctx, "Active blocks", blocks),
    panel(ctx, "Live security events", events),
    panel(ctx, "API keys", form, secretBox,
      el("label", { class: "bar note" }, showRevoked, "show revoked keys"), keys),
    panel(ctx, "Audit log", filter, audit),
  );
  await Promise.all([loadStatus(), loadKeys(), loadAudit()]);

  let refresh = null;
  const off = ctx.live.on("security", (event) => {
    const d = event.data || {};
    const text = [d.event, d.ip, d.target, d.reason, d.route, d.count > 1 ? `×${d.count}` : null, d.who ? `by ${d.who}` : null]
      .filter(Boolean).join(" ");
    events.prepend(el("li", { dataset: { event: d.event || "" } },
      el("time", {}, when(event.ts)), text));
    while (events.children.length > 50) events.lastChild.remove();
    // Counts and blocks change with these events: re-read them once per burst.
    if (!refresh) refresh = setTimeout(() => { refresh = null; loadStatus().catch(() => {}); if (d.event === "key_revoked") loadKeys().catch(() => {}); }, 500);
  });
  return () => { off(); if (refresh) clearTimeout(refresh); };
}
