// The performance section (docs/dashboard.md).
export function mount(root, ctx) {
  root.append(ctx.el("h1", {}, "Performance"));
}
