// Configuration: the 13-byte record as a hex row, click a byte to edit it, a switch per
// feature flag, export and import. Writes go over the live channel (docs/live.md) and
// are validated by the server as every record write is; every change, from here, from
// another admin or from `r13 config`, arrives as a "record" message and animates.
const HEX2 = /^[0-9a-fA-F]{2}$/;

function toHex(bytes) { return bytes.map((b) => b.toString(16).padStart(2, "0")).join(""); }

export function parseRecord(text) {
  // 26 hex digits (spaces allowed) or base64 of 13 bytes; anything else is refused.
  const compact = text.replace(/\s+/g, "");
  if (/^[0-9a-fA-F]+$/.test(compact)) {
    if (compact.length !== 26) throw new Error(`hex must be 26 digits (13 bytes), not ${compact.length}`);
    return compact.match(/../g).map((h) => parseInt(h, 16));
  }
  let raw;
  try { raw = atob(compact); } catch { throw new Error("not hex and not base64"); }
  if (raw.length !== 13) throw new Error(`base64 must decode to 13 bytes, not ${raw.length}`);
  return Array.from(raw, (c) => c.charCodeAt(0));
}

export async function mount(root, ctx) {
  const { el, api, live, toast } = ctx;
  const layout = await api("GET", "/_api/config/layout");
  const owner = new Array(layout.size);
  layout.fields.forEach((f, i) => { for (let k = 0; k < f.size; k++) owner[f.offset + k] = i; });

  const cells = [];
  const row = el("div", { class: "hexrow", role: "group", "aria-label": "record bytes" });
  for (let offset = 0; offset < layout.size; offset++) {
    const field = layout.fields[owner[offset]];
    const cell = el("button", {
      class: `byte f${owner[offset]}`, type: "button",
      title: `byte ${offset} (${field.name})`,
      dataset: { offset: String(offset) },
      onclick: () => edit(offset),
    }, el("span", { class: "off" }, offset.toString(16).padStart(2, "0")), el("span", { class: "val" }, "··"));
    cells.push(cell);
    row.append(cell);
  }
  const names = el("div", { class: "hexnames" }, layout.fields.map((f, i) =>
    el("span", { class: `fname f${i} span${f.size}` }, f.name)));
  const decoded = el("tbody");
  const flags = el("div", { class: "flags" });
  const switches = new Map();
  for (const f of layout.features) {
    const input = el("input", {
      type: "checkbox", role: "switch", id: `flag-${f.name}`, dataset: { flag: f.name },
      onchange: (e) => {
        if (!live.send({ type: "feature", bit: f.bit, on: e.target.checked })) {
          toast("not connected: the change was not sent");
          render();
        }
      },
    });
    switches.set(f.name, input);
    flags.append(el("label", { class: "flag", for: `flag-${f.name}` }, input,
      el("span", { class: "flagname" }, `${f.bit} ${f.name}`), el("span", { class: "note" }, f.meaning)));
  }
  const editor = el("form", { class: "byte-editor", hidden: true });
  const status = el("p", { class: "note", role: "status" });
  const exportHex = el("code", { class: "export", id: "export-hex" });
  const exportB64 = el("code", { class: "export", id: "export-b64" });
  const download = el("a", { class: "button", download: "config.r13", href: "#" }, "Download 13-byte file");
  const importText = el("input", { name: "record", placeholder: "26 hex digits or base64", autocomplete: "off", spellcheck: "false" });
  const importFile = el("input", { type: "file", "aria-label": "13-byte file" });
  const importError = el("p", { class: "error", role: "alert" });
  const changes = el("ul", { class: "changes" });

  root.append(
    el("h1", {}, "Configuration"),
    el("div", { class: "panel" }, el("h2", {}, "The 13-byte record"), el("div", { class: "hexwrap" }, row, names),
      editor, status),
    el("div", { class: "grid" },
      el("div", { class: "panel" }, el("h2", {}, "Fields"),
        el("table", { class: "decoded" }, el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "bytes"),
          el("th", {}, "value"), el("th", {}, "meaning"))), decoded)),
      el("div", { class: "panel" }, el("h2", {}, "Feature flags"), flags)),
    el("div", { class: "grid" },
      el("div", { class: "panel" }, el("h2", {}, "Export"),
        el("p", {}, "hex ", exportHex), el("p", {}, "base64 ", exportB64), download),
      el("form", { class: "panel import", onsubmit: (e) => { e.preventDefault(); importRecord(importText.value); } },
        el("h2", {}, "Import"), importText, el("button", { type: "submit" }, "Import"), importFile, importError),
      el("div", { class: "panel" }, el("h2", {}, "Changes"), changes)),
  );

  let current = null;
  let decodedBody = null;
  let blobUrl = null;

  async function refreshDecoded(generation) {
    // The decoded values come from the server (GET /_api/config), once per change.
    const body = await api("GET", "/_api/config");
    if (current && body.generation < generation) return;
    decodedBody = body;
    render();
  }

  function render() {
    if (!current) return;
    current.bytes.forEach((b, i) => { cells[i].querySelector(".val").textContent = b.toString(16).padStart(2, "0"); });
    row.dataset.generation = String(current.generation);
    row.dataset.hex = current.record;
    exportHex.textContent = current.record;
    exportB64.textContent = btoa(String.fromCharCode(...current.bytes));
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = URL.createObjectURL(new Blob([new Uint8Array(current.bytes)], { type: "application/octet-stream" }));
    download.href = blobUrl;
    if (decodedBody && decodedBody.hex === current.record) {
      decoded.replaceChildren(...layout.fields.map((f) => {
        let value = decodedBody[f.name];
        if (f.name === "terminalMode") value = `${value} (${layout.terminalModes[value] || "?"})`;
        if (f.name === "featureFlags") value = `${value} (0x${Number(value).toString(16)})`;
        return el("tr", { dataset: { field: f.name } }, el("td", {}, f.name),
          el("td", {}, `${f.offset}..${f.offset + f.size - 1}`), el("td", { class: "num" }, String(value)),
          el("td", { class: "note" }, f.meaning));
      }));
      for (const [name, input] of switches) input.checked = Boolean(decodedBody.features[name]);
    }
    status.textContent = `generation ${current.generation}`;
  }

  function flash(previous, next) {
    next.bytes.forEach((b, i) => {
      if (previous && previous.bytes[i] !== b) {
        const cell = cells[i];
        cell.classList.remove("changed");
        void cell.offsetWidth; // restart the animation
        cell.classList.add("changed");
      }
    });
  }

  function edit(offset) {
    if (!current) return;
    const field = layout.fields[owner[offset]];
    const input = el("input", {
      name: "byte", value: current.bytes[offset].toString(16).padStart(2, "0"), maxlength: "2",
      size: "3", autocomplete: "off", spellcheck: "false", "aria-label": `byte ${offset}`,
    });
    const error = el("span", { class: "error", role: "alert" });
    editor.replaceChildren(el("label", {}, `byte ${offset} (${field.name}) = 0x`, input),
      el("button", { type: "submit" }, "Write"),
      el("button", { type: "button", onclick: () => { editor.hidden = true; } }, "Cancel"), error);
    editor.onsubmit = (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!HEX2.test(text)) { error.textContent = "two hex digits (00-ff)"; return; }
      pending = { offset };
      if (!live.send({ type: "config", offset, data: text.toLowerCase() })) {
        error.textContent = "not connected";
        return;
      }
      editor.hidden = true;
    };
    editor.hidden = false;
    input.focus();
    input.select();
  }

  let pending = null;

  async function importRecord(text) {
    importError.textContent = "";
    let bytes;
    try { bytes = parseRecord(text); } catch (err) { importError.textContent = err.message; return; }
    if (!live.send({ type: "config", offset: 0, data: toHex(bytes) })) importError.textContent = "not connected";
    else pending = { offset: 0, import: true };
  }

  importFile.addEventListener("change", async () => {
    const file = importFile.files[0];
    if (!file) return;
    const bytes = new Uint8Array(await file.arrayBuffer());
    importFile.value = "";
    if (bytes.length !== 13) { importError.textContent = `a record file is 13 bytes, not ${bytes.length}`; return; }
    importRecord(toHex(Array.from(bytes)));
  });

  const offs = [
    live.on("record", (info) => {
      const previous = current;
      current = info;
      flash(previous, info);
      render();
      if (pending) { toast(pending.import ? "record imported" : `byte ${pending.offset} written`); pending = null; }
      refreshDecoded(info.generation).catch((err) => toast(err.message));
    }),
    live.on("error", (frame) => {
      const text = `refused: ${frame.message}`;
      if (pending && pending.import) importError.textContent = text;
      else toast(text);
      pending = null;
      render();
    }),
    live.on("config", (event) => {
      const d = event.data;
      changes.prepend(el("li", {}, `${new Date(event.ts * 1000).toLocaleTimeString()} ${d.who} (${d.ip}) `,
        el("code", {}, d.old), " → ", el("code", {}, d.new)));
      while (changes.children.length > 20) changes.lastChild.remove();
    }),
  ];
  if (!live.record()) refreshDecoded(0).catch((err) => toast(err.message));
  return () => { offs.forEach((off) => off()); if (blobUrl) URL.revokeObjectURL(blobUrl); };
}
