// The Packages section: browse and search (npm's /-/v1/search), then one package from
// /_api/packages/overview: versions, dist-tags, deprecations, owners, the types badge and
// the README, rendered and sanitised on the server (r13core/readme.py).
// Contract: docs/dashboard.md.
import { panel, table, useStyles, when } from "../widgets.js";

const PAGE = 20;
// What the README may contain once parsed here (the server's allow-list, again).
const TAGS = new Set(["A", "ABBR", "B", "BLOCKQUOTE", "BR", "CODE", "DD", "DEL", "DETAILS", "DIV",
  "DL", "DT", "EM", "H1", "H2", "H3", "H4", "H5", "H6", "HR", "I", "IMG", "INS", "KBD", "LI", "OL",
  "P", "PRE", "Q", "S", "SAMP", "SMALL", "SPAN", "STRONG", "SUB", "SUMMARY", "SUP", "TABLE",
  "TBODY", "TD", "TFOOT", "TH", "THEAD", "TR", "TT", "UL"]);
const ATTRS = new Set(["href", "title", "alt", "align", "start", "class", "rel"]);

// The server's sanitised HTML becomes nodes through DOMParser: a parsed document is inert
// (no script runs, no image loads, no handler fires), and the nodes are checked once more
// before they join the page. Images become links to their address: the page's CSP
// allows no image from elsewhere, and a README should not make the browser fetch anything.
export function readmeNodes(ctx, html) {
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const walk = (node) => {
    for (const child of [...node.childNodes]) {
      if (child.nodeType === Node.TEXT_NODE) continue;
      if (child.nodeType !== Node.ELEMENT_NODE || !TAGS.has(child.tagName)) { child.remove(); continue; }
      if (child.tagName === "IMG") {
        const src = child.getAttribute("src") || "";
        const label = `[image: ${child.getAttribute("alt") || src}]`;
        child.replaceWith(/^https?:/i.test(src)
          ? ctx.el("a", { href: src, rel: "noopener noreferrer nofollow" }, label)
          : doc.createTextNode(label));
        continue;
      }
      for (const attr of [...child.attributes]) {
        const bad = !ATTRS.has(attr.name) || (attr.name === "href" && !/^(https?:|mailto:|#|\/(?!\/)|[^:]*$)/i.test(attr.value));
        if (bad) child.removeAttribute(attr.name);
      }
      if (child.tagName === "A") { child.setAttribute("rel", "noopener noreferrer nofollow"); child.setAttribute("target", "_blank"); }
      walk(child);
    }
  };
  walk(doc.body);
  return [...doc.body.childNodes].map((n) => document.adoptNode(n));
}

export async function mount(root, ctx) {
  useStyles(ctx);
  const { el, api, toast } = ctx;
  const list = el("ul", { class: "pkglist", id: "package-list" });
  const count = el("p", { class: "note" });
  const detail = el("div", { id: "package-detail" }, el("p", { class: "note" }, "Choose a package."));
  const search = el("form", { class: "bar", role: "search" },
    el("input", { name: "q", type: "search", placeholder: "search: name, keywords:a, scope:s", "aria-label": "Search packages" }),
    el("button", { type: "submit" }, "Search"));
  let offset = 0;
  const pager = el("div", { class: "pager" });

  async function browse() {
    const text = String(new FormData(search).get("q") || "");
    const res = await api("GET", `/-/v1/search?${new URLSearchParams({ text, size: String(PAGE), from: String(offset) })}`);
    count.textContent = `${res.total} package${res.total === 1 ? "" : "s"}`;
    list.replaceChildren(...res.objects.map((o) => el("li", {},
      el("button", { dataset: { package: o.package.name }, onclick: () => open(o.package.name) }, o.package.name),
      el("span", { class: "badge" }, o.package.version),
      el("div", { class: "desc" }, o.package.description || ""))));
    pager.replaceChildren(
      el("button", { class: "small", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); browse(); } }, "Previous"),
      el("button", { class: "small", disabled: offset + PAGE >= res.total, onclick: () => { offset += PAGE; browse(); } }, "Next"));
  }
  search.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; browse().catch((err) => toast(err.message)); });

  async function open(name) {
    let o;
    try { o = await api("GET", `/_api/packages/overview?${new URLSearchParams({ name })}`); }
    catch (err) { toast(err.message); return; }
    const badges = [
      o.types === "included" ? el("span", { class: "badge ts", title: "ships its own type definitions" }, "TS") : null,
      o.types === "definitely-typed" ? el("span", { class: "badge ts", title: `@types package in this registry` }, "DT") : null,
      o.deprecated ? el("span", { class: "badge dep" }, "deprecated") : null,
      o.license ? el("span", { class: "badge" }, o.license) : null,
    ];
    const readme = el("div", { class: "readme", id: "readme" });
    if (o.readmeHtml) readme.append(...readmeNodes(ctx, o.readmeHtml));
    else readme.append(el("p", { class: "note" }, "No README."));
    detail.replaceChildren(...[
      el("h1", { id: "package-name" }, o.name, ...badges),
      o.description ? el("p", {}, o.description) : null,
      el("div", { class: "grid" },
        panel(ctx, "Dist-tags", table(ctx, ["tag", "version"], Object.entries(o.distTags).map(([t, v]) => [t, v]))),
        panel(ctx, "Owners", table(ctx, ["name", "email"], o.maintainers.map((m) => [m.name || "", m.email || ""])))),
      panel(ctx, `Versions (${o.versions.length})`, table(ctx, ["version", "published", "tags", "types", "deprecated"],
        o.versions.map((v) => [v.version, when(v.published), v.tags.join(", "), v.types ? "yes" : "", v.deprecated || ""]),
        { id: "versions-table", class: "wide" })),
      panel(ctx, "README", readme),
    ].filter(Boolean));
    detail.scrollIntoView({ block: "start" });
  }

  root.append(el("h1", {}, "Packages"),
    el("div", { class: "split" },
      el("div", { class: "panel" }, search, count, list, pager),
      el("div", {}, detail)));
  await browse();
  const off = ctx.live.on("package", () => { browse().catch(() => {}); });
  return () => off();
}
