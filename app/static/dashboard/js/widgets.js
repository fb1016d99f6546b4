// Small pieces the Security, Packages, Analytics and Users sections share: their
// stylesheet, tables, time formatting and uPlot charts (docs/dashboard.md, "Sections").
const STYLES = new URL("../css/sections.css", import.meta.url).href;
const UPLOT_CSS = new URL("../vendor/uPlot.min.css", import.meta.url).href;

export function useStyles(ctx) {
  for (const href of [STYLES, UPLOT_CSS]) {
    if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) {
      document.head.append(ctx.el("link", { rel: "stylesheet", href }));
    }
  }
}

export function when(iso) {
  if (iso === null || iso === undefined || iso === "") return "—";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").slice(0, 16) + "Z";
}

// table(ctx, ["a", "b"], [[cell, cell], ...]): cells are nodes or text.
export function table(ctx, head, rows, attrs) {
  const el = ctx.el;
  return el("div", { class: "scroll" },
    el("table", attrs || {},
      el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))));
}

export function panel(ctx, title, ...children) {
  return ctx.el("div", { class: "panel" }, ctx.el("h2", {}, title), ...children);
}

export function tile(ctx, label, value, state, name) {
  return ctx.el("div", { class: `tile state-${state || "none"}`, dataset: { tile: name || label } },
    ctx.el("div", { class: "value" }, String(value)), ctx.el("div", { class: "label" }, label));
}

// A uPlot chart of day series in ``host`` (an element already in the page): days
// ["YYYY-MM-DD"], series [{label, values}]. Returns {node, destroy}. It is made at its
// box's width and follows it (a ResizeObserver), so a phone fits.
export async function dayChart(ctx, host, days, series) {
  const { default: uPlot } = await import("../vendor/uPlot.esm.js");
  const node = ctx.el("div", { class: "chart" });
  host.append(node);
  const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const colours = ["#4fb3ff", "#3fbf7f", "#e6b400", "#ff5c5c", "#b58cff", "#ff9f43"];
  const opts = {
    width: Math.max(240, Math.floor(node.clientWidth || 600)), height: 220,
    scales: { x: { time: true } },
    axes: [{ stroke: "#8a96a3", grid: { stroke: "#2a3440" } },
      { stroke: "#8a96a3", grid: { stroke: "#2a3440" } }],
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: colours[i % colours.length], width: 2, points: { show: days.length < 40 },
    }))],
  };
  const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], node);
  const fit = () => {
    const w = Math.max(240, Math.floor(node.clientWidth || node.parentElement?.clientWidth || 600));
    if (w !== plot.width) plot.setSize({ width: w, height: 220 });
  };
  const observer = new ResizeObserver(fit);
  observer.observe(node);
  return { node, plot, destroy: () => { observer.disconnect(); plot.destroy(); } };
}
