// The Users section: list, add, change role, reset password, remove (/_api/users*; each
// change audited in r13core/identity.py). Contract: docs/dashboard.md.
import { panel, table, useStyles, when } from "../widgets.js";

const ROLES = ["reader", "publisher", "admin"];

export async function mount(root, ctx) {
  useStyles(ctx);
  const { el, api, toast } = ctx;
  const list = el("div", { id: "users-list" });
  const notice = el("div", { id: "user-notice" });

  function roleSelect(user) {
    const select = el("select", { "aria-label": `Role of ${user.name}`, dataset: { role: user.name } },
      ROLES.map((r) => el("option", { value: r, selected: r === user.role }, r)));
    select.addEventListener("change", async () => {
      try {
        const res = await api("PATCH", `/_api/users/${encodeURIComponent(user.name)}`, { role: select.value });
        toast(`${user.name} is now ${res.role}` + (res.revoked.length ? ` (${res.revoked.length} token(s) revoked)` : ""));
      } catch (err) { toast(err.message); }
      await load();
    });
    return select;
  }

  async function reset(name) {
    try {
      const res = await api("POST", `/_api/users/${encodeURIComponent(name)}/password`);
      notice.replaceChildren(el("div", { class: "secret", role: "alert" },
        el("strong", {}, `New password for ${name}: shown once`),
        el("code", { id: "new-password" }, res.password),
        el("span", {}, `${res.revoked.length} token(s) revoked.`),
        el("button", { class: "small", onclick: () => notice.replaceChildren() }, "Done")));
    } catch (err) { toast(err.message); }
  }

  async function remove(name, button) {
    if (button.dataset.armed !== "1") { button.dataset.armed = "1"; button.textContent = "Confirm remove"; return; }
    try { await api("DELETE", `/_api/users/${encodeURIComponent(name)}`); toast(`Removed ${name}`); }
    catch (err) { toast(err.message); }
    await load();
  }

  async function load() {
    const { users } = await api("GET", "/_api/users");
    list.replaceChildren(users.length
      ? table(ctx, ["name", "role", "email", "created", ""], users.map((u) => [
        el("span", { dataset: { user: u.name } }, u.name), roleSelect(u), u.email || "—", when(u.created),
        el("span", { class: "bar" },
          el("button", { class: "small", dataset: { reset: u.name }, onclick: () => reset(u.name) }, "Reset password"),
          el("button", { class: "small danger", dataset: { remove: u.name }, onclick: (e) => remove(u.name, e.currentTarget) }, "Remove")),
      ]), { id: "users-table" })
      : el("p", { class: "note" }, "No users yet."));
  }

  const form = el("form", { class: "form", id: "user-form" },
    el("label", {}, "Name", el("input", { name: "name", required: true, autocomplete: "off" })),
    el("label", {}, "Password", el("input", { name: "password", type: "password", required: true, autocomplete: "new-password" })),
    el("label", {}, "Role", el("select", { name: "role" }, ROLES.map((r) => el("option", { value: r }, r)))),
    el("label", {}, "Email", el("input", { name: "email", type: "email" })),
    el("button", { type: "submit" }, "Add user"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      const user = await api("POST", "/_api/users", {
        name: String(data.get("name")), password: String(data.get("password")),
        role: String(data.get("role")), email: String(data.get("email") || ""),
      });
      toast(`Added ${user.name}`);
      form.reset();
    } catch (err) { toast(err.message); }
    await load();
  });

  root.append(el("h1", {}, "Users"), panel(ctx, "Add a user", form), notice, panel(ctx, "Users", list));
  await load();
}
