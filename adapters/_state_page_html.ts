/**
 * The HTML of the state page: one self-contained document (no external assets) whose script
 * polls `/state` and listens to `/events`, so the page updates without reloading. Everything
 * that comes from the network goes through the script's `esc()` before it reaches the DOM.
 *
 * @module
 */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders the page for the node with this GUID. */
export function renderStatePage(guid: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AutoMPI node ${escapeHtml(guid)}</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2433; background: #f6f7fb; }
  body { margin: 0; padding: 1.2rem 1.6rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  .sub { color: #5b6478; font-size: .9rem; }
  .grid { display: grid; grid-template-columns: minmax(320px, 460px) 1fr; gap: 1.2rem; align-items: start; }
  .card { background: #fff; border-radius: 10px; padding: .8rem 1rem; box-shadow: 0 1px 3px #0002; margin-bottom: .9rem; }
  table { border-collapse: collapse; width: 100%; font-size: .85rem; }
  th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e6e8ef; white-space: nowrap; }
  th { color: #5b6478; font-weight: 600; }
  code { font-size: .85em; }
  .pill { display: inline-block; padding: 0 .5rem; border-radius: 99px; background: #e3f4e8; color: #19703a; font-size: .8rem; }
  .pill.off { background: #fde8e8; color: #9b1c1c; }
  #log { font: .8rem ui-monospace, monospace; max-height: 16rem; overflow: auto; white-space: pre-wrap; }
  .card > h2:first-child { margin-top: 0; }
  .bar { display: inline-block; width: 110px; height: .55rem; background: #e6e8ef; border-radius: 3px; vertical-align: middle; margin-right: .4rem; }
  .bar > span { display: block; height: 100%; background: #37a05b; border-radius: 3px; }
  tr.self .bar > span { background: #2f6fde; }
  tr.self td:first-child code { font-weight: 700; color: #2f6fde; }
  tr.lost td { color: #9b1c1c; }
  tr.lost .bar > span { background: #d99; }
  #placed-more { margin-top: .3rem; }
  #placement-caption { margin-bottom: .4rem; }
  svg text { font: 11px system-ui, sans-serif; fill: #1d2433; paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
</style>
</head>
<body>
<h1>AutoMPI node <code id="guid">${
    escapeHtml(guid)
  }</code> <span id="status" class="pill">connecting…</span></h1>
<div class="sub" id="summary">loading state…</div>
<div class="grid">
  <div class="card">
    <h2>Cluster</h2>
    <svg id="cluster" viewBox="0 0 420 420" width="100%" role="img" aria-label="cluster picture"></svg>
    <div class="sub" id="cluster-caption"></div>
  </div>
  <div>
    <div class="card"><h2>Links</h2><table id="links"></table></div>
    <div class="card" id="placement"><h2>Placement</h2>
      <div class="sub" id="placement-caption"></div>
      <table id="members"></table>
      <h2>Placed workers</h2>
      <table id="placed"></table>
      <div class="sub" id="placed-more"></div>
    </div>
    <div class="card"><h2>Workers on this node</h2><table id="workers"></table></div>
    <div class="card"><h2>Worker locations known</h2><table id="locations"></table></div>
    <div class="card"><h2>Recent messages to this node</h2><table id="messages"></table></div>
    <div class="card"><h2>Limits and counters</h2><table id="limits"></table></div>
    <div class="card"><h2>Events</h2><div id="log">none since this page opened</div></div>
  </div>
</div>
<script>
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
const ms = (v) => v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(1) + " s";
const bytes = (v) => v < 1024 ? v + " B" : v < 1048576 ? (v / 1024).toFixed(1) + " KiB" : (v / 1048576).toFixed(1) + " MiB";
function table(el, head, rows) {
  el.innerHTML = "<tr>" + head.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr>" +
    (rows.length ? rows.map((r) => "<tr>" + r.map((c) => "<td>" + c + "</td>").join("") + "</tr>").join("")
      : "<tr><td colspan=" + head.length + ">none</td></tr>");
}
function drawCluster(view, self) {
  const svg = $("cluster");
  const nodes = view.nodes;
  const n = nodes.length, cx = 210, cy = 210, r = n > 1 ? 160 : 0;
  const pos = new Map(nodes.map((node, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return [node.guid, [cx + r * Math.cos(a), cy + r * Math.sin(a)]];
  }));
  let out = "";
  for (const [a, b] of view.links) {
    const p = pos.get(a), q = pos.get(b);
    if (!p || !q) continue;
    const mine = a === self || b === self;
    out += '<line x1="' + p[0] + '" y1="' + p[1] + '" x2="' + q[0] + '" y2="' + q[1] +
      '" stroke="' + (mine ? "#2f6fde" : "#b8c0d4") + '" stroke-width="' + (mine ? 2.5 : 1.2) + '"/>';
  }
  for (const node of nodes) {
    const [x, y] = pos.get(node.guid);
    const fill = node.self ? "#2f6fde" : node.linked ? "#37a05b" : "#c9cfdc";
    // Short labels stay inside the picture; above the node at the top, where links leave downwards.
    const label = node.guid.length > 14 ? node.guid.slice(0, 12) + "\u2026" : node.guid;
    out += '<g data-node="' + esc(node.guid) + '"><title>' + esc(node.guid + " " + node.address) + "</title>" +
      '<circle cx="' + x + '" cy="' + y + '" r="' + (node.self ? 13 : 10) + '" fill="' + fill + '"/><text x="' + x +
      '" y="' + (y < cy - 1 ? y - 18 : y + 26) + '" text-anchor="middle">' + esc(label) + "</text></g>";
  }
  svg.innerHTML = out;
  $("cluster-caption").textContent = n + " node(s), " + view.links.length + " link(s) known; blue: this node, green: linked";
}
// A cluster may place thousands of workers: the page draws the first ones and counts the rest.
const MAX_PLACED_ROWS = 200;
const pill = (text, on) => '<span class="pill' + (on ? "" : " off") + '">' + esc(text) + "</span>";
function drawPlacement(p) {
  if (!p) { $("placement").hidden = true; return; }
  const hostCount = new Map();
  for (const w of p.workers) hostCount.set(w.host, (hostCount.get(w.host) || 0) + 1);
  const lost = new Set(p.lost);
  const rows = p.members.map((m) => ({ node: m.node, load: m.load, kinds: m.kinds, self: m.self, lost: false }));
  for (const node of p.lost) {
    if (!rows.some((r) => r.node === node)) rows.push({ node, load: hostCount.get(node) || 0, kinds: [], self: false, lost: true });
  }
  const max = Math.max(1, ...rows.map((r) => r.load));
  $("members").innerHTML = "<tr><th>node</th><th>placed workers</th><th>hosts kinds</th></tr>" + rows.map((r) =>
    '<tr data-member="' + esc(r.node) + '" data-load="' + esc(r.load) + '" class="' + (r.self ? "self" : r.lost ? "lost" : "") + '">' +
    "<td><code>" + esc(r.node) + "</code>" + (r.self ? " (this node)" : "") + (r.lost || lost.has(r.node) ? " " + pill("lost", false) : "") + "</td>" +
    '<td><span class="bar"><span style="width:' + Math.round((100 * r.load) / max) + '%"></span></span>' + esc(r.load) + "</td>" +
    "<td>" + (r.lost ? "?" : r.kinds.length ? esc(r.kinds.join(", ")) : "none") + "</td></tr>").join("");
  const shown = p.workers.slice(0, MAX_PLACED_ROWS);
  table($("placed"), ["worker", "kind", "host", "version", "running"], shown.map((w) => [
    '<code data-placed="' + esc(w.guid) + '" data-host="' + esc(w.host) + '">' + esc(w.guid) + "</code>", esc(w.kind),
    "<code>" + esc(w.host) + "</code>" + (lost.has(w.host) ? " " + pill("lost", false) : ""), esc(w.version),
    pill(w.running ? "running" : "not running", w.running)]));
  const more = p.workers.length - shown.length;
  $("placed-more").textContent = more > 0 ? "\u2026 and " + more + " more" : "";
  const st = p.stats || {};
  $("placement-caption").textContent = p.workers.length + " placed worker(s) on " + rows.length + " node(s) · spawned here " +
    (st.spawned || 0) + " · placed again " + (st.placedAgain || 0) + " · started here " + (st.started || 0) +
    (st.startFailures ? " · failed to start " + st.startFailures : "");
}
async function refresh() {
  try {
    const s = await (await fetch("state")).json();
    $("status").textContent = s.state; $("status").className = "pill" + (s.state === "running" ? "" : " off");
    $("summary").textContent = "incarnation " + s.incarnation + " · links at " + s.address + " · codec " + s.codec +
      " · up " + ms(s.uptimeMs) + " · " + s.links.length + " link(s), " + s.workers.length + " worker(s)" +
      (s.duplicateGuid ? " · duplicate GUID " + s.duplicateGuid.guid + ": also claimed by " + s.duplicateGuid.address +
        " (incarnation " + s.duplicateGuid.incarnation + ")" : "");
    table($("links"), ["peer", "address", "direction", "age", "last heard", "in", "out"], s.links.map((l) => [
      "<code>" + esc(l.peer) + "</code>", esc(l.address), esc(l.direction), ms(l.ageMs), ms(l.lastHeardMs),
      bytes(l.bytesIn) + " / " + l.framesIn, bytes(l.bytesOut) + " / " + l.framesOut]));
    table($("workers"), ["worker", "age"], s.workers.map((w) => ["<code>" + esc(w.guid) + "</code>", ms(w.ageMs)]));
    table($("locations"), ["worker", "node"], Object.entries(s.locations).map(([w, n]) =>
      ["<code>" + esc(w) + "</code>", "<code>" + esc(n) + "</code>"]));
    drawCluster(s.cluster, s.guid);
    drawPlacement(s.placement);
    const limitRows = Object.entries(s.limits || {}).map(([k, v]) => [esc(k), /Bytes$/.test(k) ? bytes(v) : /Ms$/.test(k) ? ms(v) : esc(v)]);
    const statRows = Object.entries(s.stats || {}).filter(([, v]) => v).map(([k, v]) => [esc(k), esc(v)]);
    table($("limits"), ["limit or counter", "value"], limitRows.concat(statRows));
    const m = await (await fetch("messages")).json();
    table($("messages"), ["from", "to", "message", "data"], m.slice(-10).reverse().map((x) =>
      ["<code>" + esc(x.source || x.fromNode || "?") + "</code>", "<code>" + esc(x.destination) + "</code>",
        esc(JSON.stringify(x.message)), x.data ? bytes(atob(x.data).length) : ""]));
  } catch (e) {
    $("status").textContent = "unreachable"; $("status").className = "pill off";
  }
}
refresh();
setInterval(refresh, 1000);
const log = $("log");
const events = new EventSource("events");
const kinds = ["started", "peer-discovered", "link-up", "link-down", "peer-lost", "undeliverable", "duplicate-guid",
  "protocol-error", "location-added", "location-removed", "worker-attached", "worker-detached", "worker-placed",
  "spawn-failed", "closed"];
for (const kind of kinds) {
  events.addEventListener(kind, (e) => {
    // The program's own line format: UTC time, event, key=value fields.
    const { type, ...fields } = JSON.parse(e.data);
    const text = Object.entries(fields).filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
    const line = new Date().toISOString().slice(11, 23) + " " + type.padEnd(15) + " " + text + "\\n";
    if (!log.dataset.started) { log.dataset.started = "1"; log.textContent = ""; }
    log.textContent = (line + log.textContent).slice(0, 20000);
    refresh();
  });
}
</script>
</body>
</html>
`;
}
