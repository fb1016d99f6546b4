// Performance: charts over the history window (GET /_api/performance/history once), then
// every new sample from the live channel's "metrics" topic (no polling); tiles from the
// latest sample; alerts from GET /_api/performance/alerts, fetched again when an
// "alert" event arrives. On a node of a cluster, a Nodes panel lists every node from
// GET /_api/cluster (heartbeats, alive/stale, latest figures, the cluster total),
// fetched again every few samples.
import uPlot from "../../vendor/uPlot.esm.js";

const CHARTS = [
  { id: "cpu", title: "CPU %", series: [["cpu_percent", "process tree"], ["system_cpu_percent", "system"]] },
  { id: "memory", title: "Memory %", series: [["memory_percent", "process tree"], ["system_memory_percent", "system"]] },
  { id: "requests", title: "Requests/s", series: [["requests_per_s", "requests/s"]] },
  { id: "latency", title: "Latency (ms)", series: [["latency_p50_ms", "p50"], ["latency_p95_ms", "p95"], ["latency_p99_ms", "p99"]] },
  { id: "errors", title: "Error rate %", series: [["error_rate_percent", "5xx %"]] },
  { id: "bytes", title: "Bytes/s", series: [["bytes_in_per_s", "in"], ["bytes_out_per_s", "out"]] },
  { id: "websockets", title: "WebSockets", series: [["ws_connections", "connections"], ["ws_heartbeat_ms", "heartbeat ms"]] },
];
const COLOURS = ["#4fb3ff", "#f0a030", "#c678dd", "#3fbf7f"];
const TILES = [
  ["packages", "packages", (v) => fmt(v, 0)],
  ["versions", "versions", (v) => fmt(v, 0)],
  ["publishes_per_s", "publishes/s", (v) => fmt(v, 2)],
  ["downloads_per_s", "downloads/s", (v) => fmt(v, 2)],
  ["cache_hit_rate", "cache hit rate", (v) => (v === null || v === undefined ? "—" : `${fmt(v * 100, 1)} %`)],
  ["requests_per_s", "requests/s", (v) => fmt(v, 1)],
  ["latency_p95_ms", "latency p95", (v) => (v === null || v === undefined ? "—" : `${fmt(v, 1)} ms`)],
  ["error_rate_percent", "error rate", (v) => (v === null || v === undefined ? "—" : `${fmt(v, 2)} %`)],
  ["cpu_percent", "CPU (process tree)", (v) => (v === null || v === undefined ? "—" : `${fmt(v, 1)} %`)],
  ["memory_rss_bytes", "memory (RSS)", (v) => (v === null || v === undefined ? "—" : `${fmt(v / 1048576, 0)} MiB`)],
  ["ws_connections", "WebSocket connections", (v) => fmt(v, 0)],
  ["workers", "workers", (v) => fmt(v, 0)],
];

const fig = (key, digits, unit = "") => (n) => {
  const v = n.sample ? n.sample[key] : null;
  return v === null || v === undefined ? "—" : `${fmt(v, digits)}${unit}`;
};
const NODE_COLUMNS = [
  ["node", (n) => n.node + (n.self ? " (this one)" : "")],
  ["url", (n) => n.url || "—"],
  ["state", (n) => n.state],
  ["last heartbeat", (n) => `${fmt(n.age_ms / 1000, 1)} s ago`, "num"],
  ["requests/s", fig("requests_per_s", 1), "num"],
  ["p99", fig("latency_p99_ms", 1, " ms"), "num"],
  ["CPU %", fig("cpu_percent", 1), "num"],
  ["memory", (n) => (n.sample && n.sample.memory_rss_bytes ? `${fmt(n.sample.memory_rss_bytes / 1048576, 0)} MiB` : "—"), "num"],
  ["WebSockets", fig("ws_connections", 0), "num"],
];

function fmt(value, digits) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function when(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : "—"; }

export async function mount(root, ctx) {
  const { el, api, live } = ctx;
  const [history, alerts] = await Promise.all([
    api("GET", "/_api/performance/history"),
    api("GET", "/_api/performance/alerts"),
  ]);
  const samples = history.samples || [];
  const keep = Math.max(samples.length, 300);
  let rules = alerts.rules || [];

  const tileNodes = new Map();
  const tiles = el("div", { class: "tiles" });
  for (const [metric, label] of TILES) {
    const value = el("div", { class: "value", dataset: { metric } }, "—");
    const note = el("div", { class: "note small" });
    const tile = el("div", { class: "tile state-none", dataset: { tile: metric } }, el("div", { class: "label" }, label), value, note);
    tileNodes.set(metric, { tile, value, note });
    tiles.append(tile);
  }
  const disabled = el("p", { class: "note", hidden: true }, "METRICS is off: no samples are taken (Configuration → METRICS).");
  const grid = el("div", { class: "grid charts" });
  const activeList = el("tbody");
  const recentList = el("tbody");
  const nodeList = el("tbody");
  const nodesPanel = el("div", { class: "panel", hidden: true, dataset: { panel: "nodes" } },
    el("h2", {}, "Nodes"),
    el("div", { class: "scroll" }, el("table", { class: "nodes" },
      el("thead", {}, el("tr", {}, NODE_COLUMNS.map(([h]) => el("th", {}, h)))),
      nodeList)));
  root.append(
    el("h1", {}, "Performance"), disabled, tiles, nodesPanel, grid,
    el("div", { class: "grid" },
      el("div", { class: "panel" }, el("h2", {}, "Active alerts"), alertTable(activeList)),
      el("div", { class: "panel" }, el("h2", {}, "Recent alerts"), alertTable(recentList))),
  );

  function alertTable(body) {
    return el("div", { class: "scroll" }, el("table", { class: "alerts" },
      el("thead", {}, el("tr", {}, ["rule", "metric", "threshold", "value", "peak", "start", "end"].map((h) => el("th", {}, h)))),
      body));
  }

  function renderNodes(view) {
    nodesPanel.hidden = !view.clustered;
    if (!view.clustered) return;
    const row = (n) => el("tr", { class: n.state === "stale" ? "alert-active" : "", dataset: { node: n.node } },
      ...NODE_COLUMNS.map(([, get, cls]) => el("td", cls ? { class: cls } : {}, get(n))));
    const total = view.total || {};
    const sum = el("tr", { class: "total", dataset: { node: "total" } },
      el("td", {}, `cluster (${total.alive ?? 0}/${total.nodes ?? 0} alive)`), el("td", {}), el("td", {}), el("td", {}),
      el("td", { class: "num" }, fmt(total.requests_per_s, 1)), el("td", {}),
      el("td", { class: "num" }, fmt(total.cpu_percent, 1)),
      el("td", { class: "num" }, total.memory_rss_bytes ? `${fmt(total.memory_rss_bytes / 1048576, 0)} MiB` : "—"),
      el("td", { class: "num" }, fmt(total.ws_connections, 0)));
    nodeList.replaceChildren(...(view.nodes || []).map(row), sum);
    root.dataset.nodes = String((view.nodes || []).length);
  }
  let sinceNodes = 0;
  function refreshNodes() {
    sinceNodes = 0;
    api("GET", "/_api/cluster").then(renderNodes).catch(() => { nodesPanel.hidden = true; });
  }
  refreshNodes();

  function renderAlerts(data) {
    rules = data.rules || rules;
    const row = (a) => el("tr", { class: a.ended ? "" : "alert-active" },
      el("td", {}, a.rule), el("td", {}, a.metric), el("td", { class: "num" }, fmt(a.threshold, 2)),
      el("td", { class: "num" }, fmt(a.value, 2)), el("td", { class: "num" }, fmt(a.peak, 2)),
      el("td", {}, when(a.started)), el("td", {}, a.ended ? when(a.ended) : "ongoing"));
    const empty = () => el("tr", {}, el("td", { colspan: "7", class: "note" }, "none"));
    activeList.replaceChildren(...(data.active && data.active.length ? data.active.map(row) : [empty()]));
    recentList.replaceChildren(...(data.recent && data.recent.length ? data.recent.map(row) : [empty()]));
    root.dataset.activeAlerts = String((data.active || []).length);
  }
  renderAlerts(alerts);

  function stateOf(metric, value) {
    const rule = rules.find((r) => r.metric === metric);
    if (!rule || value === null || value === undefined) return "none";
    if (value >= rule.threshold) return "bad";
    if (value >= rule.threshold * 0.8) return "warn";
    return "ok";
  }

  function renderTiles(sample) {
    for (const [metric, , format] of TILES) {
      const node = tileNodes.get(metric);
      const value = sample[metric];
      node.value.textContent = format(value);
      node.tile.className = `tile state-${stateOf(metric, value)}`;
    }
    const cache = tileNodes.get("cache_hit_rate");
    cache.note.textContent = sample.cache_hit_rate === null || sample.cache_hit_rate === undefined
      ? "no uplink cache figures yet" : "";
    disabled.hidden = sample.metrics_enabled !== false;
  }

  const charts = CHARTS.map((spec) => {
    const box = el("div", { class: "chart", dataset: { chart: spec.id } });
    const panel = el("div", { class: "panel state-none" }, el("h2", {}, spec.title), box);
    grid.append(panel);
    const data = [[], ...spec.series.map(() => [])];
    for (const s of samples) push(data, spec, s);
    const plot = new uPlot({
      width: Math.max(240, box.clientWidth || 320),
      height: 160,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#8a96a3", grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" } },
        { stroke: "#8a96a3", grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" }, size: 60 },
      ],
      series: [{}, ...spec.series.map(([, label], i) => ({ label, stroke: COLOURS[i], width: 1.5, spanGaps: false }))],
    }, data, box);
    box.dataset.points = String(data[0].length);
    return { spec, data, plot, box, panel };
  });

  function push(data, spec, s) {
    data[0].push(s.ts);
    spec.series.forEach(([metric], i) => data[i + 1].push(s[metric] === undefined ? null : s[metric]));
    if (data[0].length > keep) data.forEach((column) => column.shift());
  }

  function addSample(s) {
    for (const chart of charts) {
      push(chart.data, chart.spec, s);
      chart.plot.setData(chart.data);
      chart.box.dataset.points = String(chart.data[0].length);
      const first = chart.spec.series[0][0];
      chart.panel.className = `panel state-${stateOf(first, s[first])}`;
    }
    renderTiles(s);
    root.dataset.lastSeq = String(s.seq);
    if (!nodesPanel.hidden && ++sinceNodes >= 5) refreshNodes();
  }

  // bench/dashboard.py reads this mark: the time from navigation to a chart with data.
  if (samples.length && !performance.getEntriesByName("r13-first-chart").length) {
    performance.mark("r13-first-chart");
  }
  if (samples.length) renderTiles(samples[samples.length - 1]);
  else renderTiles(await api("GET", "/_api/performance/metrics"));

  const resize = new ResizeObserver(() => {
    for (const chart of charts) {
      const width = Math.max(240, chart.box.clientWidth);
      if (width !== chart.plot.width) chart.plot.setSize({ width, height: 160 });
    }
  });
  for (const chart of charts) resize.observe(chart.box);

  const offs = [
    live.on("metrics", (event) => addSample(event.data)),
    live.on("alert", () => { api("GET", "/_api/performance/alerts").then(renderAlerts).catch(() => {}); }),
  ];
  return () => { offs.forEach((off) => off()); resize.disconnect(); charts.forEach((c) => c.plot.destroy()); };
}
