// The Analytics section: downloads per day in total and per package (the top ones, or one
// chosen), the top packages, publishes per day; every figure from /_api/analytics/* (the
// per-package daily counts r13core/usage.py keeps). Contract: docs/dashboard.md.
import { dayChart, panel, table, tile, useStyles } from "../widgets.js";

const RANGES = [["7", "7 days"], ["30", "30 days"], ["90", "90 days"], ["365", "a year"]];

function range(days) {
  const to = new Date();
  const from = new Date(to.getTime() - (Number(days) - 1) * 86400000);
  return { from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) };
}

export async function mount(root, ctx) {
  useStyles(ctx);
  const { el, api, toast } = ctx;
  const tiles = el("div", { class: "tiles", id: "analytics-tiles" });
  const downloads = el("div", { id: "downloads-chart" });
  const perPackage = el("div", { id: "package-chart" });
  const publishes = el("div", { id: "publishes-chart" });
  const top = el("div", { id: "top-packages" });
  const controls = el("form", { class: "bar" },
    el("select", { name: "days", "aria-label": "Range" }, RANGES.map(([v, t]) => el("option", { value: v, selected: v === "30" }, t))),
    el("input", { name: "package", placeholder: "one package (empty: the top 5)", "aria-label": "Package" }),
    el("button", { type: "submit" }, "Show"));
  let charts = [];

  async function load() {
    const data = new FormData(controls);
    const r = range(String(data.get("days") || "30"));
    const q = (extra) => new URLSearchParams({ ...r, ...extra });
    const chosen = String(data.get("package") || "").trim();
    const [all, pubs, ranked] = await Promise.all([
      api("GET", `/_api/analytics/downloads?${q({})}`),
      api("GET", `/_api/analytics/publishes?${q({})}`),
      api("GET", `/_api/analytics/top?${q({ kind: "downloads", limit: "10" })}`),
    ]);
    const names = chosen ? [chosen] : ranked.packages.slice(0, 5).map((p) => p.package);
    const each = await Promise.all(names.map((name) => api("GET", `/_api/analytics/downloads?${q({ package: name })}`)));
    for (const c of charts) c.destroy();
    charts = [];
    const days = all.days.map((d) => d.day);
    const draw = async (box, title, series) => {
      const holder = panel(ctx, title);
      box.replaceChildren(holder);
      charts.push(await dayChart(ctx, holder, days, series));
      box.dataset.points = String(days.length);
    };
    tiles.replaceChildren(...[
      tile(ctx, `downloads ${all.from} – ${all.to}`, all.total, "none", "downloads"),
      tile(ctx, "versions published", pubs.total, "none", "publishes"),
      ranked.packages.length
        ? tile(ctx, `top: ${ranked.packages[0].package}`, ranked.packages[0].count, "none", "top")
        : null,
    ].filter(Boolean));
    await draw(downloads, "Downloads per day, all packages", [{ label: "downloads", values: all.days.map((d) => d.count) }]);
    await draw(perPackage, chosen ? `Downloads per day: ${chosen}` : "Downloads per day, top packages",
      each.map((s) => ({ label: s.package, values: s.days.map((d) => d.count) })));
    await draw(publishes, "Versions published per day", [{ label: "publishes", values: pubs.days.map((d) => d.count) }]);
    top.replaceChildren(panel(ctx, "Top packages by downloads", ranked.packages.length
      ? table(ctx, ["package", "downloads"], ranked.packages.map((p) => [p.package, String(p.count)]), { id: "top-table" })
      : el("p", { class: "note" }, "No downloads in this range.")));
  }
  controls.addEventListener("submit", (e) => { e.preventDefault(); load().catch((err) => toast(err.message)); });

  root.append(el("h1", {}, "Analytics"), controls, tiles,
    el("div", { class: "grid" }, downloads, perPackage, publishes, top));
  await load();
  return () => { for (const c of charts) c.destroy(); };
}
