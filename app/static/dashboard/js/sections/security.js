// Placeholder: the security section (built on branch r-dash2). Contract: docs/dashboard.md.
export function mount(root, ctx) {
  root.append(ctx.el("h1", {}, "Security"), ctx.el("p", { class: "note" }, "Coming soon."));
}
