/// The web console served at `GET /`: one HTML page with its style and script inline, built
/// into the binary (no build step, nothing fetched from anywhere but this server's API).
///
/// Every `NONCE` marker is replaced by the response's CSP nonce (`ConsoleRoutes`). The script
/// creates elements with DOM calls only (never `innerHTML`), which the page's Trusted Types
/// policy enforces. How it follows a run's events is described in `docs/console.md`.
enum ConsolePage {
    static let nonceMarker = "{{NONCE}}"

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flowd console</title>
<link rel="icon" href="data:,">
<style nonce="{{NONCE}}">
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #57606a; --line: #d0d7de;
  --panel: #f6f8fa; --accent: #0b57d0; --ok: #1a7f37; --bad: #c5221f; --warn: #9a6700; --lit: #d3e3fd; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #3d444d; --panel: #161b22;
    --accent: #78a9ff; --ok: #3fb950; --bad: #ff7b72; --warn: #d29922; --lit: #1c3364; }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.25rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 0 0 .75rem; }
h3 { font-size: 1rem; margin: 0 0 .25rem; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; display: grid; gap: 1rem; }
section { border: 1px solid var(--line); border-radius: 8px; padding: 1rem; background: var(--panel); min-width: 0; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 1; }
label { display: block; font-weight: 600; margin-bottom: .2rem; }
input, select, textarea, button { font: inherit; color: inherit; }
input, select, textarea { width: 100%; padding: .45rem .5rem; border: 1px solid var(--muted); border-radius: 6px; background: var(--bg); }
textarea { resize: vertical; }
button { padding: .45rem 1rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: var(--accent); }
button:disabled { opacity: .5; cursor: not-allowed; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.field { margin-bottom: .75rem; }
.hint { color: var(--muted); font-size: .875rem; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1rem; }
@media (max-width: 40rem) { .row { grid-template-columns: 1fr; } main { padding: .5rem; } section { padding: .75rem; } }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; }
.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
.inline > div { flex: 1 1 12rem; }
.flows { list-style: none; margin: 0; padding: 0; display: grid; gap: .5rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 16rem), 1fr)); }
.flows li { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; background: var(--bg); min-width: 0; }
.flows p { margin: 0; font-size: .9rem; overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .875rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: .5rem 0 0; padding: .5rem; border-radius: 6px; background: var(--bg); border: 1px solid var(--line); max-height: 20rem; overflow: auto; }
#run-id, #run-meta { overflow-wrap: anywhere; }
a { color: var(--accent); }
#run-meta { margin: 0 0 .75rem; }
#run-retry-of:not([hidden]) + #run-resumed::before { content: " · "; }
.steps .resumed { color: var(--state); padding: 0 .75rem; font-style: italic; }
#run-actions { margin-top: .75rem; }
#run-panel { margin-top: 1.25rem; border-top: 1px solid var(--line); padding-top: .75rem; }
.steps { list-style: none; margin: 0; padding: 0; display: grid; gap: .5rem; }
.step { border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px; padding: .5rem .75rem; background: var(--bg); }
.step-head { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline; }
.step .agent { font-weight: 700; }
.step .duration { color: var(--muted); font-variant-numeric: tabular-nums; }
.badge { font-size: .8rem; font-weight: 700; text-transform: uppercase; letter-spacing: .03em; }
[data-status="running"], [data-status="queued"], [data-status="cancelling"] { --state: var(--accent); }
[data-status="completed"], [data-status="succeeded"] { --state: var(--ok); }
[data-status="failed"] { --state: var(--bad); }
[data-status="cancelled"], [data-status="pending_docs"], [data-status="interrupted"], [data-status="resumed"] { --state: var(--warn); }
.step[data-status] { border-left-color: var(--state, var(--muted)); }
.badge, #run-status { color: var(--state, var(--muted)); }
.result { margin-top: 1rem; border: 2px solid var(--ok); border-radius: 8px; padding: .75rem 1rem; background: var(--bg); }
.result pre { font-size: 1rem; border: 0; padding: 0; }
.error { margin-top: 1rem; border: 2px solid var(--bad); border-radius: 8px; padding: .5rem .75rem; color: var(--bad); background: var(--bg); overflow-wrap: anywhere; }
.pending { margin-top: 1rem; border: 2px solid var(--warn); border-radius: 8px; padding: .75rem 1rem; background: var(--bg); }
.pending ul { list-style: none; padding: 0; margin: 0 0 .75rem; display: grid; gap: .75rem; }
.doc-status { display: block; margin-top: .25rem; }
.doc[data-uploaded="true"] .doc-status { color: var(--ok); font-weight: 600; }
.note { color: var(--muted); }
.memory-entry { margin-top: .75rem; }
.graph { margin: .5rem 0 0; }
.graph svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.graph .node rect { fill: var(--bg); stroke: var(--muted); stroke-width: 1.5; }
.graph .node text { fill: var(--fg); font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; text-anchor: middle; dominant-baseline: central; }
.graph .node .mark { font-size: 12px; font-weight: 700; text-anchor: end; }
.graph .node.end rect { stroke-dasharray: 4 3; }
.graph .node.end text { fill: var(--muted); }
.graph .edge path { fill: none; stroke: var(--muted); stroke-width: 1.5; }
.graph .edge text { fill: var(--muted); font: 12px system-ui, sans-serif; paint-order: stroke; stroke: var(--panel); stroke-width: 4px; stroke-linejoin: round; }
.graph .arrow { fill: var(--muted); }
.graph .arrow.taken { fill: var(--ok); }
.graph .edge[data-taken="true"] path { stroke: var(--ok); stroke-width: 2.5; }
.graph .node[data-state="running"] rect { fill: var(--lit); stroke: var(--accent); stroke-width: 3.5; }
.graph .node[data-state="running"] text { font-weight: 700; }
.graph .node[data-state="completed"] rect { stroke: var(--ok); stroke-width: 2.5; }
.graph .node[data-state="completed"] .mark { fill: var(--ok); }
.graph .node[data-state="failed"] rect { stroke: var(--bad); stroke-width: 2.5; }
.graph .node[data-state="failed"] .mark { fill: var(--bad); }
.graph .node[data-state="cancelled"] rect, .graph .node[data-state="interrupted"] rect { stroke: var(--warn); stroke-width: 2.5; stroke-dasharray: 5 3; }
@media (prefers-reduced-motion: no-preference) {
  .graph .node[data-state="running"] rect { animation: pulse 1.2s ease-in-out infinite alternate; }
  @keyframes pulse { from { stroke-opacity: 1; } to { stroke-opacity: .35; } }
}
#run-graph { margin-bottom: .75rem; }
.legend { margin: .25rem 0 0; text-align: center; }
pre.tokens { border-style: dashed; }
.history { list-style: none; margin: .75rem 0 0; padding: 0; display: grid; gap: .5rem; }
.history li { border: 1px solid var(--line); border-left: 6px solid var(--state, var(--muted)); border-radius: 6px; padding: .4rem .75rem;
  background: var(--bg); display: flex; flex-wrap: wrap; gap: .15rem 1rem; align-items: baseline; }
.history li[aria-current="true"] { outline: 2px solid var(--accent); }
.history a { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .875rem; overflow-wrap: anywhere; }
.history .meta { color: var(--muted); font-size: .875rem; font-variant-numeric: tabular-nums; }
#history-more { margin-top: .5rem; }
</style>
</head>
<body>
<a class="skip" href="#story">Skip to the run form</a>
<svg id="svg-namespace" hidden aria-hidden="true"></svg>
<header>
  <h1>flowd console</h1>
  <p id="key-status" class="actions" hidden><span>API key in use (this tab only)</span>
    <button type="button" id="forget-key" class="secondary">Forget key</button></p>
</header>
<main>
  <section id="key-panel" aria-labelledby="key-title" hidden>
    <h2 id="key-title">API key</h2>
    <p><span id="key-message">This server needs an API key.</span>
      <span id="key-hint" class="hint">It is kept in this tab's session storage only and sent as a bearer token.</span></p>
    <form id="key-form" class="inline">
      <div><label for="key-input">API key</label>
        <input id="key-input" type="password" autocomplete="off" required aria-describedby="key-message key-hint"></div>
      <button type="submit">Use key</button>
    </form>
  </section>

  <section aria-labelledby="flows-title">
    <h2 id="flows-title">Flows</h2>
    <p id="flows-status" class="note" role="status">Loading the flows…</p>
    <ul id="flows" class="flows"></ul>
  </section>

  <section aria-labelledby="run-title">
    <h2 id="run-title">Run a flow</h2>
    <form id="run-form" novalidate>
      <div class="row">
        <div class="field"><label for="flow">Flow</label><select id="flow" required></select></div>
        <div class="field"><label for="story">Story id</label>
          <input id="story" required autocomplete="off" spellcheck="false" placeholder="story-1" aria-describedby="story-hint">
          <span id="story-hint" class="hint">Letters, digits, <code>.</code> <code>_</code> <code>-</code>; runs of one story share its agents' memory.</span></div>
      </div>
      <div class="field"><label for="input">Input</label><textarea id="input" rows="3" required></textarea></div>
      <div class="actions">
        <button type="submit" id="run">Run</button>
        <button type="button" id="cancel" class="secondary" disabled>Cancel</button>
      </div>
    </form>
    <div id="error" class="error" role="alert" hidden></div>
    <div id="run-panel" hidden>
      <h3 id="run-heading" class="run-heading" tabindex="-1">Run <code id="run-id"></code></h3>
      <p>Status: <strong id="run-status" role="status" data-status=""></strong> <span id="stream-note" class="note"></span></p>
      <p id="run-meta" class="note" hidden><span id="run-retry-of" hidden>Retry of run
        <a id="retry-of-link" href="#"><code id="retry-of-id"></code></a></span><span
        id="run-resumed" data-count="0" hidden></span></p>
      <div id="run-graph" class="graph" hidden></div>
      <ol id="steps" class="steps" aria-label="Agents of this run" aria-live="polite"></ol>
      <div id="run-actions" class="actions" hidden>
        <button type="button" id="retry" aria-describedby="retry-hint">Retry from the failed step</button>
        <span id="retry-hint" class="hint">Starts a new run that keeps the outputs of the agents that completed and goes on from the one that failed or was cancelled.</span>
      </div>
      <div id="result" class="result" role="region" aria-labelledby="result-title" tabindex="-1" hidden>
        <h3 id="result-title">Result</h3>
        <pre id="result-text"></pre>
      </div>
      <div id="pending" class="pending" role="region" aria-labelledby="pending-title" hidden>
        <h3 id="pending-title">Documents missing</h3>
        <p>This flow needs these documents. Upload each one, then run again.</p>
        <ul id="pending-list"></ul>
        <button type="button" id="run-again">Run again</button>
      </div>
    </div>
  </section>

  <section aria-labelledby="history-title">
    <h2 id="history-title">Runs of a story</h2>
    <form id="history-form" class="inline" novalidate>
      <div><label for="history-story">Story id</label><input id="history-story" required autocomplete="off" spellcheck="false"></div>
      <button type="submit">Show runs</button>
    </form>
    <p id="history-status" class="note" role="status"></p>
    <ol id="history" class="history" aria-label="Runs of the story, newest first"></ol>
    <button type="button" id="history-more" class="secondary" hidden>Older runs</button>
  </section>

  <section aria-labelledby="memory-title">
    <h2 id="memory-title">Memory of a story</h2>
    <form id="memory-form" class="inline" novalidate>
      <div><label for="memory-story">Story id</label><input id="memory-story" required autocomplete="off" spellcheck="false"></div>
      <button type="submit">Show memory</button>
    </form>
    <div id="memory" aria-live="polite"></div>
  </section>
</main>
<script nonce="{{NONCE}}">
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = 'flowd.apiKey';
  const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  let key = sessionStorage.getItem(KEY);
  let agents = [];        // every agent of every flow, for the memory view
  let flowsByName = new Map();  // the flows as `GET /flows` gives them, to draw a run's graph
  let current = null;     // the run on screen; its `request` (flow, story, input) when known, for "Run again"

  class Unauthorized extends Error {}

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === 'text') node.textContent = value;
      else if (name === 'class') node.className = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }
  const path = (...parts) => '/' + parts.map(encodeURIComponent).join('/');
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function authorized(headers) {
    const all = Object.assign({}, headers);
    if (key) all.Authorization = 'Bearer ' + key;
    return all;
  }

  /** One API call; 401 asks for the key and throws. */
  async function api(method, url, body, type) {
    const init = { method, headers: authorized(), cache: 'no-store' };
    if (body !== undefined) { init.body = body; init.headers['Content-Type'] = type || 'application/json'; }
    const response = await fetch(url, init);
    if (response.status === 401) { unauthorized(); throw new Unauthorized('Not authenticated'); }
    let data = null;
    if ((response.headers.get('Content-Type') || '').includes('json')) data = await response.json().catch(() => null);
    return { status: response.status, ok: response.ok, data };
  }

  /** The server's `detail`: a message, or FastAPI's list of issues. */
  function detailText(data, status) {
    const detail = data && data.detail;
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) {
      return detail.map((issue) => {
        const where = Array.isArray(issue.loc) ? issue.loc.filter((part) => part !== 'body').join('.') : '';
        return (where ? where + ': ' : '') + issue.msg;
      }).join('; ');
    }
    return 'HTTP ' + status;
  }

  function failure(error) { return error instanceof Unauthorized ? 'Waiting for the API key.' : String(error.message || error); }

  // API key

  function unauthorized() {
    $('key-message').textContent = key ? 'The server refused that key. Enter the API key again.' : 'This server needs an API key.';
    key = null;
    sessionStorage.removeItem(KEY);
    showKeyStatus();
    $('key-panel').hidden = false;
    $('key-input').focus();
  }
  function showKeyStatus() { $('key-status').hidden = !key; }
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('key-input').value.trim();
    if (!value) return;
    key = value;
    sessionStorage.setItem(KEY, key);
    $('key-input').value = '';
    $('key-panel').hidden = true;
    showKeyStatus();
    loadFlows();
    openFromLocation();
  });
  $('forget-key').addEventListener('click', () => {
    key = null;
    sessionStorage.removeItem(KEY);
    showKeyStatus();
  });

  // Flows

  async function loadFlows() {
    const status = $('flows-status');
    status.textContent = 'Loading the flows…';
    try {
      const response = await api('GET', '/flows');
      if (!response.ok) { status.textContent = 'Could not load the flows: ' + detailText(response.data, response.status); return; }
      const flows = response.data.flows;
      const select = $('flow');
      const selected = select.value;
      select.replaceChildren(...flows.map((flow) => el('option', { value: flow.name, text: flow.name })));
      if (flows.some((flow) => flow.name === selected)) select.value = selected;
      else if (flows.some((flow) => flow.name === 'default')) select.value = 'default';
      $('flows').replaceChildren(...flows.map((flow) => el('li', { 'data-flow': flow.name },
        el('h3', { text: flow.name }),
        el('p', { text: 'Agents: ' + flow.agents.join(' → ') }),
        el('p', { text: 'Requires: ' + (flow.requires.length ? flow.requires.join(', ') : 'no documents') }),
        el('div', { class: 'graph' }, drawGraph(flow)))));
      agents = [...new Set(flows.flatMap((flow) => flow.agents))].sort();
      flowsByName = new Map(flows.map((flow) => [flow.name, flow]));
      if (current) drawRunGraph(current);
      status.textContent = flows.length === 1 ? '1 flow' : flows.length + ' flows';
    } catch (error) {
      status.textContent = error instanceof Unauthorized ? failure(error) : 'Could not load the flows: ' + failure(error);
    }
  }

  // Flow graphs: an SVG laid out here, layers breadth-first from the start, top to bottom

  const SVG = $('svg-namespace').namespaceURI;  // the page names no URL, not even this one
  let graphs = 0;  // numbers each graph, so that its markers' ids are unique in the page

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    node.append(...children);
    return node;
  }

  /** The flow's edges as `GET /flows` gives them; a sequence's when a server gives none. */
  function edgesOf(flow) {
    if (Array.isArray(flow.edges)) return flow.edges;
    return flow.agents.slice(1).map((to, index) => ({ from: flow.agents[index], action: 'default', to }));
  }

  /** Each node's layer: its distance from the start along the edges in the order written; `end` below all. */
  function layers(flow, edges) {
    const start = flow.start || flow.agents[0];
    const layer = new Map([[start, 0]]);
    const queue = [start];
    while (queue.length) {
      const from = queue.shift();
      for (const edge of edges) {
        if (edge.from === from && edge.to !== 'end' && !layer.has(edge.to)) { layer.set(edge.to, layer.get(from) + 1); queue.push(edge.to); }
      }
    }
    const names = [start, ...flow.agents.filter((agent) => agent !== start)];
    for (const name of names) if (!layer.has(name)) layer.set(name, 0);
    if (edges.some((edge) => edge.to === 'end')) {
      layer.set('end', Math.max(...names.map((name) => layer.get(name))) + 1);
      names.push('end');
    }
    const rows = [];
    for (const name of names) (rows[layer.get(name)] = rows[layer.get(name)] || []).push(name);
    return { rows, layer };
  }

  /** An edge that goes to an earlier layer or its own (a loop) is a back edge: drawn as a curve on the right. */
  function drawGraph(flow) {
    const id = 'graph-' + (++graphs);
    const edges = edgesOf(flow);
    const { rows, layer } = layers(flow, edges);
    const isBack = (edge) => edge.to !== 'end' && layer.get(edge.to) <= layer.get(edge.from);
    const back = edges.filter(isBack);
    const boxH = 34, hGap = 24, vGap = 50, pad = 8;
    const boxW = Math.max(76, ...rows.flat().map((name) => name.length * 8 + 34));
    const widest = Math.max(...rows.map((row) => row.length));
    const coreW = widest * boxW + (widest - 1) * hGap;
    const bulge = (k) => 36 + 24 * k;
    const textW = (text) => text.length * 7 + 10;
    const right = Math.max(0, ...back.map((edge, k) => bulge(k) * 0.75 + textW(edge.action)));
    const width = Math.ceil(pad * 2 + coreW + right), height = pad * 2 + rows.length * boxH + (rows.length - 1) * vGap;
    const place = new Map();
    rows.forEach((row, r) => {
      const rowW = row.length * boxW + (row.length - 1) * hGap;
      row.forEach((name, i) => place.set(name, { x: pad + (coreW - rowW) / 2 + i * (boxW + hGap), y: pad + r * (boxH + vGap) }));
    });
    const marker = (suffix, cls) => svg('marker', { id: id + suffix, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
      markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    const description = 'Flow ' + flow.name + ': starts at ' + (flow.start || flow.agents[0]) + '; '
      + (edges.length ? edges.map((edge) => edge.from + ' goes to ' + edge.to + ' on ' + edge.action).join('; ') : 'one agent') + '.';
    const root = svg('svg', { class: 'flow-graph', 'data-flow': flow.name, viewBox: '0 0 ' + width + ' ' + height, width, height,
      role: 'img', 'aria-labelledby': id + '-title' },
      svg('title', { id: id + '-title', text: description }),
      svg('defs', {}, marker('-arrow', 'arrow'), marker('-arrow-taken', 'arrow taken')));
    const seen = new Map();  // forward edges that share their ends: their labels go one under the other
    const edgeLayer = svg('g', { class: 'edges' });
    for (const edge of edges) {
      const a = place.get(edge.from), b = place.get(edge.to);
      if (!a || !b) continue;
      let d, lx, ly;
      if (isBack(edge)) {
        const k = back.indexOf(edge);
        const self = edge.from === edge.to;
        const x1 = a.x + boxW, y1 = a.y + boxH * (self ? 0.75 : 0.5), x2 = b.x + boxW, y2 = b.y + boxH * (self ? 0.25 : 0.5);
        const cx = self ? x1 + 36 : pad + coreW + bulge(k);
        d = 'M' + x1 + ',' + y1 + ' C' + cx + ',' + (y1 + (self ? 12 : 0)) + ' ' + cx + ',' + (y2 - (self ? 12 : 0)) + ' ' + x2 + ',' + y2;
        lx = 0.125 * (x1 + x2) + 0.75 * cx + 4;
        ly = (y1 + y2) / 2;
      } else {
        const x1 = a.x + boxW / 2, y1 = a.y + boxH, x2 = b.x + boxW / 2, y2 = b.y;
        const pair = edge.from + '\n' + edge.to;
        const n = seen.get(pair) || 0;
        seen.set(pair, n + 1);
        d = 'M' + x1 + ',' + y1 + ' L' + x2 + ',' + y2;
        lx = (x1 + x2) / 2 + 6;
        ly = (y1 + y2) / 2 + n * 14;
      }
      edgeLayer.append(svg('g', { class: 'edge', 'data-from': edge.from, 'data-action': edge.action, 'data-to': edge.to,
        'data-back': String(isBack(edge)), 'data-marker': id + '-arrow' },
        svg('path', { d, 'marker-end': 'url(#' + id + '-arrow)' }),
        svg('text', { x: lx.toFixed(1), y: ly.toFixed(1), 'dominant-baseline': 'central', text: edge.action })));
    }
    const nodeLayer = svg('g', { class: 'nodes' });
    for (const [name, at] of place) {
      const end = name === 'end';
      nodeLayer.append(svg('g', { class: end ? 'node end' : 'node', 'data-agent': name, 'data-state': 'idle' },
        svg('rect', { x: at.x, y: at.y, width: boxW, height: boxH, rx: end ? boxH / 2 : 6 }),
        svg('text', { class: 'label', x: at.x + boxW / 2, y: at.y + boxH / 2, text: name }),
        svg('text', { class: 'mark', x: at.x + boxW - 5, y: at.y + 9 })));
    }
    root.append(edgeLayer, nodeLayer);
    return root;
  }

  /** The graph of the run on screen, once its flow is known. */
  function drawRunGraph(run) {
    if (run !== current || run.graph || !run.flow || !flowsByName.has(run.flow)) return;
    run.graph = drawGraph(flowsByName.get(run.flow));
    // Larger than the flows' own graphs: it is what a person watches while the run goes on.
    for (const side of ['width', 'height']) run.graph.setAttribute(side, String(Math.round(run.graph.getAttribute(side) * 1.4)));
    $('run-graph').replaceChildren(run.graph,
      el('p', { class: 'hint legend', text: 'Lit: the agent running · ✓ completed · ✗ failed · ×N: runs of an agent in a loop' }));
    $('run-graph').hidden = false;
    paint(run);
  }

  /** Lights the running agent, marks the ones that completed or failed and the edges taken. */
  function paint(run) {
    if (!run.graph) return;
    for (const node of run.graph.querySelectorAll('g.node')) {
      const state = run.nodes.get(node.dataset.agent);
      node.dataset.state = state ? state.state : 'idle';
      const mark = state && state.state === 'completed' ? '✓' : state && state.state === 'failed' ? '✗' : '';
      node.querySelector('.mark').textContent = mark + (state && state.count > 1 ? ' ×' + state.count : '');
    }
    for (const edge of run.graph.querySelectorAll('g.edge')) {
      const taken = run.taken.has(edge.dataset.from + '\n' + edge.dataset.to);
      edge.dataset.taken = String(taken);
      edge.querySelector('path').setAttribute('marker-end', 'url(#' + edge.dataset.marker + (taken ? '-taken' : '') + ')');
    }
  }

  /** What the run's events say of an agent, for its graph. */
  function nodeState(run, agent, state) {
    const before = run.nodes.get(agent);
    run.nodes.set(agent, { state, count: (before ? before.count : 0) + (state === 'running' ? 1 : 0) });
  }

  // Runs

  function showError(message) { const box = $('error'); box.textContent = message; box.hidden = false; }
  function hideError() { $('error').hidden = true; $('error').textContent = ''; }
  function setStatus(status) { const node = $('run-status'); node.textContent = status.replace('_', ' '); node.dataset.status = status; }

  $('run-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const request = { flow: $('flow').value, story_id: $('story').value.trim(), input: $('input').value };
    if (!ID.test(request.story_id)) {
      showError('Story id: letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128.');
      $('story').focus();
      return;
    }
    start(request);
  });
  $('run-again').addEventListener('click', () => { if (current && current.request) start(current.request); });

  async function start(request) {
    hideError();
    $('run').disabled = true;
    try {
      const response = await api('POST', '/runs', JSON.stringify(request));
      if (response.status !== 202) { showError(detailText(response.data, response.status)); return; }
      show({ run_id: response.data.run_id, status: 'queued', resumed: 0 }, request);
      if (!$('memory-story').value) $('memory-story').value = request.story_id;
      if (!$('history-story').value) $('history-story').value = request.story_id;
    } catch (error) {
      showError(failure(error));
    } finally {
      $('run').disabled = false;
    }
  }

  /** Puts a run on screen (what its record says so far) and follows its events from the first. */
  function show(record, request) {
    stopFollowing();
    current = { id: record.run_id, request, lastEventId: 0, finished: false, steps: new Map(), source: null, controller: null, timer: 0,
      flow: record.flow || (request && request.flow) || null, graph: null, nodes: new Map(), taken: new Set(), last: null };
    $('run-id').textContent = current.id;
    $('steps').replaceChildren();
    $('run-graph').replaceChildren();
    $('run-graph').hidden = true;
    drawRunGraph(current);
    if (!current.flow) refreshRecord(current);
    markCurrentInHistory();
    $('result').hidden = true;
    $('pending').hidden = true;
    $('pending-list').replaceChildren();
    $('stream-note').textContent = '';
    $('run-actions').hidden = true;
    showRecord(current, record);
    $('run-panel').hidden = false;
    setStatus(record.status);
    $('cancel').disabled = ['succeeded', 'pending_docs', 'failed', 'cancelled'].includes(record.status);
    current.timer = setInterval(tick, 200, current);
    follow(current);
  }

  /** What the record adds to the events: how often the run was resumed, and what it retries. */
  function showRecord(run, record) {
    if (run !== current) return;
    if (!run.flow && typeof record.flow === 'string') { run.flow = record.flow; drawRunGraph(run); }
    const resumed = Number(record.resumed) || 0;
    const note = $('run-resumed');
    note.dataset.count = String(resumed);
    note.textContent = resumed === 1 ? 'Resumed once after a restart' : 'Resumed ' + resumed + ' times after a restart';
    note.hidden = resumed <= 0;
    const original = typeof record.retry_of === 'string' && ID.test(record.retry_of) ? record.retry_of : null;
    $('run-retry-of').hidden = !original;
    if (original) {
      $('retry-of-id').textContent = original;
      $('retry-of-link').href = '#run=' + encodeURIComponent(original);
      $('retry-of-link').dataset.run = original;
    }
    $('run-meta').hidden = note.hidden && !original;
  }

  async function refreshRecord(run) {
    try {
      const response = await api('GET', path('runs', run.id));
      if (response.ok) showRecord(run, response.data);
    } catch (error) {
      // The events go on; the next `resumed` event reads the record again.
    }
  }

  /** Opens a run that is not on screen (the run a retry retries, a `#run=<id>` link). */
  async function openRun(id) {
    if (!ID.test(id)) { showError('No such run id: ' + id); return; }
    hideError();
    try {
      const response = await api('GET', path('runs', id));
      if (!response.ok) { showError(detailText(response.data, response.status)); return; }
      show(response.data, null);
      $('run-heading').focus();
    } catch (error) {
      showError(failure(error));
    }
  }

  function openFromLocation() {
    const match = /^#run=(.+)$/.exec(location.hash);
    if (!match) return;
    let id = null;
    try { id = decodeURIComponent(match[1]); } catch (error) { /* a malformed link: nothing to open */ }
    if (id) openRun(id);
  }

  $('retry-of-link').addEventListener('click', (event) => {
    event.preventDefault();
    const id = event.currentTarget.dataset.run;
    if (id) openRun(id);
  });

  $('retry').addEventListener('click', async () => {
    const run = current;
    if (!run || !run.finished) return;
    const button = $('retry');
    button.disabled = true;
    hideError();
    try {
      const response = await api('POST', path('runs', run.id, 'retry'));
      if (response.status !== 202) { showError(detailText(response.data, response.status)); return; }
      show({ run_id: response.data.run_id, status: 'queued', resumed: 0, retry_of: run.id }, run.request);
      $('run-heading').focus();
    } catch (error) {
      showError(failure(error));
    } finally {
      button.disabled = false;
    }
  });

  function stopFollowing() {
    if (!current) return;
    if (current.source) current.source.close();
    if (current.controller) current.controller.abort();
    clearInterval(current.timer);
  }

  /** Without a key the browser's EventSource follows (and resumes) the stream; it cannot send
   * an Authorization header, so with a key the page reads the stream through fetch. */
  function follow(run) {
    if (key) followWithFetch(run); else followWithEventSource(run);
  }

  function followWithEventSource(run) {
    const source = new EventSource(path('runs', run.id, 'events') + '?tokens=true');
    run.source = source;
    for (const name of ['progress', 'result', 'token', 'done', 'error', 'cancelled']) {
      source.addEventListener(name, (event) => {
        if (event instanceof MessageEvent) { $('stream-note').textContent = ''; handle(run, name, event.lastEventId, event.data); return; }
        // A connection error (not the server's `error` event): EventSource retries with
        // Last-Event-ID unless the server answered something other than a stream (204 at the end).
        if (run.finished) return;
        if (source.readyState === EventSource.CLOSED) settle(run);
        else $('stream-note').textContent = '(connection lost, reconnecting…)';
      });
    }
  }

  async function followWithFetch(run) {
    const controller = new AbortController();
    run.controller = controller;
    let delay = 500;
    while (!run.finished && run === current) {
      try {
        const headers = authorized({ Accept: 'text/event-stream' });
        if (run.lastEventId) headers['Last-Event-ID'] = String(run.lastEventId);
        const response = await fetch(path('runs', run.id, 'events') + '?tokens=true', { headers, signal: controller.signal, cache: 'no-store' });
        if (response.status === 401) { unauthorized(); return; }
        if (response.status === 204) { await settle(run); return; }
        if (!response.ok) { showError(detailText(await response.json().catch(() => null), response.status)); return; }
        $('stream-note').textContent = '';
        await readEvents(response.body, (name, id, data) => handle(run, name, id, data));
        delay = 500;
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      if (run.finished) return;
      $('stream-note').textContent = '(connection lost, reconnecting…)';
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** A text/event-stream body, event by event (the fields flowd sends: id, event, data). */
  async function readEvents(body, dispatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '', name = '', id = '', data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        if (line === '') {
          if (data.length) dispatch(name || 'message', id, data.join('\n'));
          name = ''; data = [];
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          if (field === 'event') name = text;
          else if (field === 'data') data.push(text);
          else if (field === 'id') id = text;
        }
      }
    }
  }

  function handle(run, name, id, text) {
    if (run !== current || run.finished) return;
    if (name === 'token') {
      // No id of its own (not stored, never replayed): the id seen is the event's before it.
      try { tokens(run, JSON.parse(text)); } catch (error) { /* not JSON: nothing to show */ }
      return;
    }
    const number = Number(id);
    if (number) {
      if (number <= run.lastEventId) return; // shown already, before a reconnect
      run.lastEventId = number;
    }
    let data;
    try { data = JSON.parse(text); } catch (error) { return; }
    switch (name) {
      case 'progress': progress(run, data); break;
      case 'result': output(run, data.agent, data.data); break;
      case 'done':
        if (data.pending_docs) { finish(run, 'pending_docs'); showPending(data.pending_docs); }
        else { finish(run, 'succeeded'); showResult(data.result); }
        break;
      case 'error': finish(run, 'failed'); showError(data.detail); break;
      case 'cancelled': finish(run, 'cancelled'); break;
    }
  }

  function progress(run, data) {
    progressOnGraph(run, data);
    if (data.status === 'resumed') {
      // The process that ran it died and another took it up: what was running then starts over.
      for (const step of run.steps.values()) if (step.dataset.status === 'running') setStep(step, 'interrupted');
      $('steps').append(el('li', { class: 'resumed', 'data-status': 'resumed', text: data.agent
        ? 'Resumed after a restart, going on with ' + data.agent + '.'
        : 'Resumed after a restart; no agent was left to run.' }));
      refreshRecord(run);
      return;
    }
    if (data.status === 'started') {
      setStatus('running');
      const step = el('li', { class: 'step', 'data-agent': data.agent, 'data-status': 'running' },
        el('div', { class: 'step-head' },
          el('span', { class: 'agent', text: data.agent }),
          el('span', { class: 'badge', text: 'running' }),
          el('span', { class: 'duration', 'aria-label': 'duration' })));
      step.startedAt = performance.now();
      run.steps.set(data.agent, step);
      $('steps').append(step);
      return;
    }
    const step = run.steps.get(data.agent);
    if (!step) return;
    dropTokens(step);
    setStep(step, data.status);
    if (typeof data.duration === 'number') step.querySelector('.duration').textContent = seconds(data.duration);
  }

  function progressOnGraph(run, data) {
    if (data.status === 'resumed') {
      for (const [agent, state] of run.nodes) if (state.state === 'running') nodeState(run, agent, 'interrupted');
    } else if (data.status === 'started') {
      if (run.last) run.taken.add(run.last + '\n' + data.agent);
      nodeState(run, data.agent, 'running');
    } else if (data.status === 'completed' || data.status === 'failed') {
      nodeState(run, data.agent, data.status);
      run.last = data.agent;
    }
    paint(run);
  }

  /** An llm agent's output as it comes: it starts over at the agent's next progress event. */
  function tokens(run, data) {
    const step = run.steps.get(data.agent);
    if (!step || step.dataset.status !== 'running' || typeof data.text !== 'string') return;
    let pre = step.querySelector('pre.tokens');
    if (!pre) {
      pre = el('pre', { class: 'tokens', 'aria-live': 'off', 'aria-label': data.agent + ' is writing' });
      step.append(pre);
    }
    pre.textContent += data.text;
  }

  function dropTokens(step) {
    const pre = step.querySelector('pre.tokens');
    if (pre) pre.remove();
  }

  function setStep(step, status) {
    step.dataset.status = status;
    step.querySelector('.badge').textContent = status;
  }

  function output(run, agent, text) {
    const step = run.steps.get(agent);
    if (!step) return;
    step.append(el('pre', { class: 'output', 'aria-label': 'output of ' + agent, text }));
  }

  function tick(run) {
    for (const step of run.steps.values()) {
      if (step.dataset.status === 'running') step.querySelector('.duration').textContent = seconds((performance.now() - step.startedAt) / 1000);
    }
  }

  function seconds(value) { return value < 0.001 ? '< 1 ms' : value < 1 ? Math.round(value * 1000) + ' ms' : value.toFixed(2) + ' s'; }

  function finish(run, status) {
    run.finished = true;
    clearInterval(run.timer);
    if (run.source) run.source.close();
    if (status === 'cancelled') for (const step of run.steps.values()) if (step.dataset.status === 'running') setStep(step, 'cancelled');
    for (const [agent, state] of run.nodes) if (state.state === 'running') nodeState(run, agent, status === 'cancelled' ? 'cancelled' : 'interrupted');
    if (status === 'succeeded' && run.last) {
      run.taken.add(run.last + '\nend');
      nodeState(run, 'end', 'completed');
    }
    paint(run);
    setStatus(status);
    $('stream-note').textContent = '';
    $('cancel').disabled = true;
    $('run-actions').hidden = !(status === 'failed' || status === 'cancelled');
    if (run.request && run.request.story_id === shownHistory.story) loadHistory(shownHistory.story, false);
  }

  function showResult(text) {
    $('result-text').textContent = text;
    $('result').hidden = false;
  }

  /** The stream ended without a terminal event we saw: the record says how the run ended. */
  async function settle(run) {
    try {
      const response = await api('GET', path('runs', run.id));
      if (!response.ok) return;
      const record = response.data;
      showRecord(run, record);
      if (run.finished) return;
      if (record.status === 'succeeded') { finish(run, 'succeeded'); showResult(record.result); }
      else if (record.status === 'pending_docs') { finish(run, 'pending_docs'); showPending(record.pending_docs); }
      else if (record.status === 'failed') { finish(run, 'failed'); showError(record.error); }
      else if (record.status === 'cancelled') finish(run, 'cancelled');
    } catch (error) {
      showError(failure(error));
    }
  }

  $('cancel').addEventListener('click', async () => {
    const run = current;
    if (!run || run.finished) return;
    try {
      const response = await api('POST', path('runs', run.id, 'cancel'));
      if (response.status !== 202) showError(detailText(response.data, response.status));
      else if (!run.finished) setStatus('cancelling');
    } catch (error) {
      showError(failure(error));
    }
  });

  // Documents a run waits for

  function showPending(ids) {
    $('pending-list').replaceChildren(...ids.map((id) => {
      const text = el('textarea', { id: 'doc-' + id, rows: '4' });
      const file = el('input', { id: 'doc-file-' + id, type: 'file', accept: '.md,.markdown,.txt,text/*' });
      const status = el('span', { class: 'doc-status', role: 'status' });
      const upload = el('button', { type: 'button', class: 'secondary', text: 'Upload ' + id });
      const item = el('li', { class: 'doc', 'data-doc': id },
        el('label', { for: 'doc-' + id }, 'Document ', el('code', { text: id })),
        text,
        el('label', { for: 'doc-file-' + id, class: 'hint' }, 'or a file for ', el('code', { text: id })),
        file, el('div', { class: 'actions' }, upload), status);
      upload.addEventListener('click', async () => {
        upload.disabled = true;
        status.textContent = 'Uploading…';
        try {
          const body = file.files.length ? await file.files[0].text() : text.value;
          const response = await api('PUT', path('docs', id), body, 'text/markdown; charset=utf-8');
          if (response.ok) {
            item.dataset.uploaded = 'true';
            status.textContent = 'Uploaded (' + response.data.bytes + ' bytes).';
          } else {
            status.textContent = 'Upload failed: ' + detailText(response.data, response.status);
          }
        } catch (error) {
          status.textContent = 'Upload failed: ' + failure(error);
        } finally {
          upload.disabled = false;
        }
      });
      return item;
    }));
    $('run-again').hidden = !(current && current.request);
    $('pending').hidden = false;
    const first = $('pending-list').querySelector('textarea');
    if (first) first.focus();
  }

  // Runs of a story

  let shownHistory = { story: null, cursor: null };

  $('history-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const story = $('history-story').value.trim();
    if (!ID.test(story)) { $('history-status').textContent = 'Enter a valid story id.'; $('history').replaceChildren(); return; }
    loadHistory(story, false);
  });
  $('history-more').addEventListener('click', () => { if (shownHistory.story) loadHistory(shownHistory.story, true); });

  /** `GET /runs?story_id=`: newest first, a page at a time (`next_cursor`). */
  async function loadHistory(story, more) {
    const status = $('history-status');
    if (!more) shownHistory = { story, cursor: null };
    const cursor = shownHistory.cursor;
    status.textContent = 'Loading the runs…';
    $('history-more').hidden = true;
    try {
      let url = '/runs?story_id=' + encodeURIComponent(story) + '&limit=20';
      if (more && cursor) url += '&cursor=' + encodeURIComponent(cursor);
      const response = await api('GET', url);
      if (story !== shownHistory.story) return;  // another story was asked for meanwhile
      if (response.status === 404 || response.status === 405) {
        status.textContent = 'This server does not list runs (GET /runs answered ' + response.status + ').';
        return;
      }
      if (!response.ok) { status.textContent = 'Could not list the runs: ' + detailText(response.data, response.status); return; }
      const items = response.data.runs.map(historyItem);
      if (more) $('history').append(...items); else $('history').replaceChildren(...items);
      shownHistory.cursor = response.data.next_cursor || null;
      $('history-more').hidden = !shownHistory.cursor;
      const count = $('history').children.length;
      status.textContent = count === 0 ? 'No runs of story ' + story + ' yet.'
        : (count === 1 ? '1 run' : count + ' runs') + ' of story ' + story + (shownHistory.cursor ? ', newest first; more are older.' : ', newest first.');
      markCurrentInHistory();
    } catch (error) {
      status.textContent = failure(error);
    }
  }

  function historyItem(record) {
    const link = el('a', { href: '#run=' + encodeURIComponent(record.run_id), text: record.run_id, 'aria-label': 'Run ' + record.run_id + ', ' + record.status.replace('_', ' ') });
    link.addEventListener('click', (event) => { event.preventDefault(); openRun(record.run_id); });
    const parts = [record.flow];
    const created = new Date(record.created_at);
    if (!isNaN(created)) parts.push(created.toLocaleString());
    const finished = record.finished_at ? new Date(record.finished_at) : null;
    parts.push(finished && !isNaN(finished) ? 'took ' + seconds(Math.max(0, finished - created) / 1000) : 'not finished');
    if (record.usage) parts.push(record.usage.prompt_tokens + ' prompt + ' + record.usage.completion_tokens + ' completion tokens');
    return el('li', { 'data-run': record.run_id, 'data-status': record.status },
      link, el('span', { class: 'badge', text: record.status.replace('_', ' ') }),
      el('span', { class: 'meta', text: parts.join(' · ') }));
  }

  function markCurrentInHistory() {
    for (const item of $('history').children) {
      if (current && item.dataset.run === current.id) item.setAttribute('aria-current', 'true');
      else item.removeAttribute('aria-current');
    }
  }

  // Memory

  $('memory-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const story = $('memory-story').value.trim();
    const out = $('memory');
    if (!ID.test(story)) { out.replaceChildren(el('p', { class: 'error', text: 'Enter a valid story id.' })); return; }
    out.replaceChildren(el('p', { class: 'note', text: 'Loading…' }));
    try {
      // Keys are <agent>:<story>; asking per agent keeps each answer to that one story.
      const answers = await Promise.all(agents.map((agent) =>
        api('GET', '/memory/isolated?prefix=' + encodeURIComponent(agent + ':' + story))
          .then((response) => ({ agent, response }))));
      const entries = [];
      for (const { agent, response } of answers) {
        if (!response.ok) { out.replaceChildren(el('p', { class: 'error', text: detailText(response.data, response.status) })); return; }
        entries.push(...response.data.entries.filter((entry) => entry.key === agent + ':' + story));
      }
      if (!entries.length) { out.replaceChildren(el('p', { class: 'note', text: 'No memory for story ' + story + ' yet.' })); return; }
      out.replaceChildren(...entries.map((entry) => el('div', { class: 'memory-entry', 'data-key': entry.key },
        el('h3', {}, el('code', { text: entry.key })),
        el('pre', { text: JSON.stringify(entry.value, null, 2) }))));
    } catch (error) {
      out.replaceChildren(el('p', { class: 'error', text: failure(error) }));
    }
  });

  window.addEventListener('hashchange', openFromLocation);
  showKeyStatus();
  loadFlows();
  openFromLocation();
})();
</script>
</body>
</html>
"""#
}
