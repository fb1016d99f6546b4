// Placeholder: the analytics section (built on branch r-dash2). Contract: docs/dashboard.md.
export function mount(root, ctx) {
  root.append(ctx.el("h1", {}, "Analytics"), ctx.el("p", { class: "note" }, "Coming soon."));
}
