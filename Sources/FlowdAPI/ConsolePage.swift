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
  --panel: #f6f8fa; --accent: #0b57d0; --ok: #1a7f37; --bad: #c5221f; --warn: #9a6700; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #3d444d; --panel: #161b22;
    --accent: #78a9ff; --ok: #3fb950; --bad: #ff7b72; --warn: #d29922; }
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
.flows { list-style: none; margin: 0; padding: 0; display: grid; gap: .5rem; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); }
.flows li { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; background: var(--bg); }
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
</style>
</head>
<body>
<a class="skip" href="#story">Skip to the run form</a>
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
        el('p', { text: 'Requires: ' + (flow.requires.length ? flow.requires.join(', ') : 'no documents') }))));
      agents = [...new Set(flows.flatMap((flow) => flow.agents))].sort();
      status.textContent = flows.length === 1 ? '1 flow' : flows.length + ' flows';
    } catch (error) {
      status.textContent = error instanceof Unauthorized ? failure(error) : 'Could not load the flows: ' + failure(error);
    }
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
    } catch (error) {
      showError(failure(error));
    } finally {
      $('run').disabled = false;
    }
  }

  /** Puts a run on screen (what its record says so far) and follows its events from the first. */
  function show(record, request) {
    stopFollowing();
    current = { id: record.run_id, request, lastEventId: 0, finished: false, steps: new Map(), source: null, controller: null, timer: 0 };
    $('run-id').textContent = current.id;
    $('steps').replaceChildren();
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
    const source = new EventSource(path('runs', run.id, 'events'));
    run.source = source;
    for (const name of ['progress', 'result', 'done', 'error', 'cancelled']) {
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
        const response = await fetch(path('runs', run.id, 'events'), { headers, signal: controller.signal, cache: 'no-store' });
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
    setStep(step, data.status);
    if (typeof data.duration === 'number') step.querySelector('.duration').textContent = seconds(data.duration);
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
    setStatus(status);
    $('stream-note').textContent = '';
    $('cancel').disabled = true;
    $('run-actions').hidden = !(status === 'failed' || status === 'cancelled');
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
