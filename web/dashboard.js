// The local runtime's dashboard: each mapping's lag and counters, the latest invocations, and the
// dead letters with a redrive button, from /dev/status and /dev/dead-letters (polled).
'use strict';

const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 1000;
const DEAD_LETTERS_EVERY_MS = 2000;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function cells(tr, values) {
  for (const [value, className] of values) tr.append(el('td', className || '', value));
  return tr;
}

const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

// Dead letters per consumer, from the last read of the dead-letter topics.
let lettersByConsumer = new Map();

async function refreshStatus() {
  try {
    const r = await fetch('/dev/status', { cache: 'no-store' });
    const { mappings } = await r.json();
    $('mappings').tBodies[0].replaceChildren(...mappings.map((m) => {
      const tr = el('tr', sum(m.lag) > 0 ? 'lagging' : '');
      tr.dataset.function = m.function;
      return cells(tr, [
        [m.function], [m.topics.join(', ')], [sum(m.lag), 'number lag'], [m.invocations, 'number invocations'],
        [m.records, 'number records'], [m.functionErrors, m.functionErrors ? 'number bad' : 'number'],
        [m.retries, m.retries ? 'number bad' : 'number'], [m.deadLettered, m.deadLettered ? 'number bad' : 'number'],
        [lettersByConsumer.get(m.function) || 0, lettersByConsumer.get(m.function) ? 'number bad dead' : 'number dead'],
      ]);
    }));
    const recent = mappings
      .flatMap((m) => (m.recent || []).map((i) => ({ ...i, function: m.function })))
      .sort((a, b) => b.at.localeCompare(a.at))
      .slice(0, 30);
    $('invocations').tBodies[0].replaceChildren(...recent.map((i) => {
      const tr = el('tr');
      tr.dataset.function = i.function;
      return cells(tr, [
        [new Date(i.at).toLocaleTimeString()], [i.function], [i.batch], [i.records, 'number'], [i.durationMs, 'number'],
        [i.outcome, `outcome-${i.outcome.replace(/ /g, '-')}`],
      ]);
    }));
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $('updated').textContent = `not reachable: ${e.message}`;
  }
}

async function refreshDeadLetters() {
  try {
    const r = await fetch('/dev/dead-letters', { cache: 'no-store' });
    if (!r.ok) throw new Error(await r.text());
    const { deadLetters, totals } = await r.json();
    // `<function>-dlq` → how many it holds (the table lists each topic's newest only).
    lettersByConsumer = new Map(Object.entries(totals || {}).map(([topic, n]) => [topic.replace(/-dlq$/, ''), n]));
    $('dead-letters').tBodies[0].replaceChildren(...deadLetters.map((d) => {
      const tr = el('tr');
      tr.dataset.at = d.at;
      cells(tr, [
        [d.at], [d.consumer], [d.source, 'source'], [d.ageSeconds === null ? '?' : `${d.ageSeconds}s`],
        [d.redrives, 'number redrives'], [d.reason, 'reason'],
      ]);
      const td = el('td');
      const button = el('button', 'redrive', 'Redrive');
      button.type = 'button';
      button.onclick = () => redrive(d.at, button);
      td.append(button);
      tr.append(td);
      return tr;
    }));
  } catch (e) {
    $('redrive-result').textContent = `dead letters not read: ${e.message}`;
  }
}

async function redrive(at, button) {
  button.disabled = true;
  const r = await fetch('/dev/dead-letters/redrive', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ at }),
  });
  const body = await r.json().catch(() => ({}));
  $('redrive-result').textContent = r.ok ? `${at} redriven to ${body.redriven}` : `${at} not redriven: ${body.refused || r.status}`;
  refreshDeadLetters();
}

refreshStatus();
refreshDeadLetters();
setInterval(refreshStatus, STATUS_EVERY_MS);
setInterval(refreshDeadLetters, DEAD_LETTERS_EVERY_MS);
