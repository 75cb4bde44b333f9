// The dispatcher console: live sessions and the escalations queue over server-sent
// events, actions over the JSON API. Plain ES module, no build step. Everything a
// technician wrote is put in the page as text, never as markup.

const csrf = document.querySelector('meta[name="csrf"]').content;
const $ = (selector) => document.querySelector(selector);

let sessionsAt = 0; // the server's clock when the sessions were read
let receivedAt = 0; // this page's clock then
let sessions = [];
let escalations = [];
let selected = null; // the id of the escalation in the detail panel

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function shown(value) {
  if (value === undefined || value === null || value === '') return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function stepText(step, of) {
  if (step === undefined || step === null || step === '') return '—';
  return of ? `Step ${step} of ${of}` : String(step);
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function when(at) {
  if (at === undefined || at === null || at === '') return '—';
  const date = typeof at === 'number' ? new Date(at * 1000) : new Date(at);
  return Number.isNaN(date.getTime()) ? String(at) : date.toLocaleString();
}

function waiting(outbox) {
  const count = Array.isArray(outbox) ? outbox.length : Number(outbox) || 0;
  return count ? `${count} message(s)` : '—';
}

function lastTool(value) {
  if (value && typeof value === 'object') {
    const parts = [value.tool, value.ok === false ? 'failed' : value.ok ? 'ok' : null, value.message];
    return parts.filter(Boolean).join(' · ') || shown(value);
  }
  return shown(value);
}

// --- Server calls ---

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(body),
  };
  options.credentials = 'same-origin';
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error('The server cannot be reached; check the connection and try again.');
  }
  if (response.status === 401) {
    window.location.assign('/ops/login');
    throw new Error('Signed out.');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new Error((data && data.error) || `The server answered ${response.status}.`);
  return data;
}

// --- Live sessions ---

function renderSessions() {
  const body = $('#sessions tbody');
  const idleBase = (Date.now() / 1000 - receivedAt);
  const rows = sessions.map((s) => {
    const row = el('tr', undefined, { 'data-key': s.key });
    const who = s.name ? `${s.name} (${s.cuid})` : shown(s.cuid);
    row.append(
      el('td', who),
      el('td', shown(s.bridge)),
      el('td', shown(s.phase)),
      el('td', shown(s.order_id)),
      el('td', stepText(s.step, s.of)),
      el('td', s.idle_seconds === undefined || s.idle_seconds === null
        ? '—' : duration(s.idle_seconds + idleBase), { 'data-idle': '' }),
      el('td', lastTool(s.last_tool)),
      el('td', waiting(s.outbox)),
    );
    return row;
  });
  body.replaceChildren(...rows);
  $('#sessions-empty').hidden = rows.length > 0;
}

function tickIdle() {
  const idleBase = (Date.now() / 1000 - receivedAt);
  const cells = document.querySelectorAll('#sessions td[data-idle]');
  cells.forEach((cell, i) => {
    const s = sessions[i];
    if (s && s.idle_seconds !== undefined && s.idle_seconds !== null) {
      cell.textContent = duration(s.idle_seconds + idleBase);
    }
  });
}

// --- The queue and the detail panel ---

function renderQueue() {
  const filter = $('#queue-filter').value;
  const list = $('#queue');
  const items = escalations
    .filter((e) => !filter || e.status === filter)
    .map((e) => {
      const item = el('li', undefined, { 'data-id': e.id, 'data-status': e.status });
      const button = el('button', undefined, { type: 'button', 'aria-pressed': String(e.id === selected) });
      button.append(
        el('span', e.id, { class: 'id' }),
        el('span', e.status, { class: `status status-${e.status}` }),
        el('span', `${shown(e.order_id)} · ${shown(e.cuid)}`),
        el('span', shown(e.words), { class: 'words' }),
      );
      button.addEventListener('click', () => select(e.id));
      item.append(button);
      return item;
    });
  list.replaceChildren(...items);
  $('#queue-empty').hidden = items.length > 0;
  if (selected) renderEscalation(escalations.find((e) => e.id === selected));
}

function renderEscalation(e) {
  const panel = $('#escalation');
  if (!e) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  panel.dataset.id = e.id;
  panel.dataset.status = e.status;
  $('#escalation-title').textContent = `Escalation ${e.id}`;
  const facts = [
    ['Status', e.outcome ? `${e.status} (${e.outcome})` : e.status],
    ['Technician', e.cuid],
    ['Order', e.order_id],
    ['Kind', e.kind],
    ['Step', stepText(e.step, e.of)],
    ["Technician's words", e.words],
    ['Operator', e.operator],
    ['Answer', e.answer],
    ['Session', e.session_key],
    ['Raised', when(e.created_at)],
    ['Updated', when(e.updated_at)],
  ];
  $('#escalation-facts').replaceChildren(
    ...facts.flatMap(([name, value]) => [el('dt', name), el('dd', shown(value))]),
  );
  const params = e.params && typeof e.params === 'object' ? Object.entries(e.params) : [];
  const rows = params.map(([name, value]) => {
    const row = el('tr');
    row.append(el('td', name), el('td', shown(value)));
    return row;
  });
  if (!rows.length) {
    const row = el('tr');
    row.append(el('td', 'none', { colspan: '2' }));
    rows.push(row);
  }
  $('#escalation-params tbody').replaceChildren(...rows);
  const open = e.status === 'open';
  const working = e.status === 'taken' || e.status === 'answered';
  panel.querySelector('button[name=take]').disabled = !open;
  panel.querySelector('button[name=send]').disabled = !working;
  panel.querySelector('button[name=handback]').disabled = !working;
  panel.querySelector('button[name=close]').disabled = e.status === 'closed';
  panel.querySelector('button[name=cancel]').disabled = e.status === 'closed';
  panel.querySelector('button[name=audit]').disabled = !e.order_id;
}

async function select(id) {
  selected = id;
  renderQueue();
  try {
    const e = await api(`/ops/api/escalations/${encodeURIComponent(id)}`);
    replaceEscalation(e);
  } catch (error) {
    say(error.message);
  }
  $('#escalation-title').focus();
}

function replaceEscalation(e) {
  const i = escalations.findIndex((x) => x.id === e.id);
  if (i >= 0) escalations[i] = e; else escalations.unshift(e);
  renderQueue();
}

function say(text) {
  $('#escalation-message').textContent = text;
}

// Where an answer went: the technician's most recently active conversation.
function answerSent(e) {
  const bridge = (e.sent_to || '').split(':')[1];
  return bridge
    ? `Answer sent to ${e.cuid} in their ${bridge} conversation (the one they last used).`
    : 'Answer sent to the technician.';
}

async function act(name, body, done) {
  if (!selected) return;
  say('Working…');
  try {
    const e = await api(`/ops/api/escalations/${encodeURIComponent(selected)}/${name}`, body || {});
    replaceEscalation(e);
    say(typeof done === 'function' ? done(e) : done);
    return true;
  } catch (error) {
    say(error.message);
    return false;
  }
}

// --- Audit ---

async function showAudit(orderId) {
  const order = orderId.trim();
  const message = $('#audit-message');
  if (!order) {
    message.textContent = 'Type an order id first.';
    return;
  }
  $('#audit-order').value = order;
  message.textContent = 'Loading…';
  try {
    const data = await api(`/ops/api/orders/${encodeURIComponent(order)}/audit`);
    const rows = data.entries.map((a) => {
      const row = el('tr', undefined, { 'data-ok': String(a.ok) });
      row.append(
        el('td', when(a.at)),
        el('td', shown(a.tool)),
        el('td', shown(a.args)),
        el('td', `${a.ok ? 'ok' : 'failed'}: ${shown(a.result)}`),
        el('td', a.duration_ms === undefined || a.duration_ms === null ? '—' : `${Math.round(a.duration_ms)} ms`),
      );
      return row;
    });
    $('#audit-entries tbody').replaceChildren(...rows);
    message.textContent = rows.length ? `${rows.length} tool call(s) for ${order}.` : `No tool calls for ${order}.`;
  } catch (error) {
    message.textContent = error.message;
  }
}

// --- Wiring ---

function connect() {
  const source = new EventSource('/ops/events');
  source.addEventListener('open', () => {
    document.body.dataset.state = 'online';
    $('#live').textContent = 'Live';
  });
  source.addEventListener('error', () => {
    document.body.dataset.state = 'offline';
    $('#live').textContent = 'Offline: reconnecting…';
  });
  source.addEventListener('sessions', (event) => {
    const data = JSON.parse(event.data);
    sessions = data.sessions;
    sessionsAt = data.at;
    receivedAt = Date.now() / 1000;
    renderSessions();
  });
  source.addEventListener('queue', (event) => {
    escalations = JSON.parse(event.data).escalations;
    renderQueue();
  });
  source.addEventListener('signout', () => {
    source.close();
    window.location.assign('/ops/login');
  });
}

function start() {
  $('#escalation-title').tabIndex = -1;
  $('#queue-filter').addEventListener('change', renderQueue);
  const panel = $('#escalation');
  panel.querySelector('button[name=take]').addEventListener('click', () => act('take', {}, 'Taken.'));
  panel.querySelector('button[name=handback]').addEventListener('click', () =>
    act('handback', {}, 'Handed back to the technician.'));
  panel.querySelector('button[name=close]').addEventListener('click', () => act('close', {}, 'Closed.'));
  panel.querySelector('button[name=audit]').addEventListener('click', () => {
    const e = escalations.find((x) => x.id === selected);
    if (e && e.order_id) showAudit(e.order_id).then(() => $('#audit-title').scrollIntoView());
  });
  $('#answer-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('#answer').value;
    if (!text.trim()) {
      say('Write an answer first.');
      return;
    }
    if (await act('answer', { text }, answerSent)) $('#answer').value = '';
  });
  $('#cancel-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const reason = $('#reason').value;
    if (!reason.trim()) {
      say('Give a reason to cancel the order.');
      return;
    }
    if (await act('cancel', { reason }, 'Order cancelled.')) $('#reason').value = '';
  });
  $('#audit-form').addEventListener('submit', (event) => {
    event.preventDefault();
    showAudit($('#audit-order').value);
  });
  setInterval(tickIdle, 1000);
  connect();
}

start();
