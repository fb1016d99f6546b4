// Placeholder: the packages section (built on branch r-dash2). Contract: docs/dashboard.md.
export function mount(root, ctx) {
  root.append(ctx.el("h1", {}, "Packages"), ctx.el("p", { class: "note" }, "Coming soon."));
}
