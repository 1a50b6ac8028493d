import {api, el, say, utc, seconds, bytes, statusBadge, failed} from './common.js';

const form = document.getElementById('search');
const body = document.querySelector('#results tbody');
const prev = document.getElementById('prev');
const next = document.getElementById('next');
const info = document.getElementById('page-info');
let offset = 0;
let pending = 0;

function query() {
  const data = new FormData(form);
  const q = new URLSearchParams();
  for (const name of ['q', 'room', 'participant', 'call_id', 'status', 'min_duration', 'max_duration', 'sort', 'order', 'limit']) {
    const v = String(data.get(name) || '').trim();
    if (v) q.set(name, v);
  }
  for (const name of ['started_after', 'started_before']) {
    const v = String(data.get(name) || '').trim();
    if (v) q.set(name, new Date(v + 'Z').toISOString());  // the fields are in UTC, as the table is
  }
  for (const tag of String(data.get('tag') || '').split(',')) if (tag.trim()) q.append('tag', tag.trim());
  q.set('offset', String(offset));
  return q;
}

// Column headers sort on the server (the whole result, not just this page): a button in each sortable
// header; pressing the sorted column again reverses the order. aria-sort tells screen readers.
const sortField = form.elements.namedItem('sort');
const orderField = form.elements.namedItem('order');
const NAMES = {started_at: 'start time', room: 'room', participants: 'number of participants',
  duration: 'duration', status: 'status', bytes: 'size'};
for (const th of document.querySelectorAll('#results th[data-sort]')) {
  const label = th.textContent;
  th.replaceChildren(el('button', {type: 'button', class: 'sort', text: label,
    title: `Sort by ${NAMES[th.dataset.sort]}`,
    onclick: () => {
      if (sortField.value === th.dataset.sort) orderField.value = orderField.value === 'asc' ? 'desc' : 'asc';
      else { sortField.value = th.dataset.sort; orderField.value = th.dataset.sort === 'room' ? 'asc' : 'desc'; }
      offset = 0;
      search();
    }}));
}

function markSorted() {
  for (const th of document.querySelectorAll('#results th[data-sort]')) {
    if (th.dataset.sort === sortField.value) th.setAttribute('aria-sort', orderField.value === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function row(r) {
  const people = r.participants.map(p => p.display_name || p.id).join(', ');
  const tags = Object.entries(r.metadata).map(([k, v]) => `${k}: ${v}`).join(', ');
  const live = r.status === 'recording' || r.status === 'paused';
  const page = `/console/recordings/${encodeURIComponent(r.recording_id)}`;
  const main = el('tr', {class: live ? 'live' : ''},
    el('td', {}, el('a', {href: page, text: utc(r.started_at)})),
    el('td', {text: r.room_id ?? '—'}),
    el('td', {text: people || '—'}),
    el('td', {text: seconds(r.duration)}),
    el('td', {}, statusBadge(r.status)),
    el('td', {text: tags || '—'}),
    el('td', {text: bytes(r.bytes)}));
  if (!r.transcript_hits.length) return [main];
  // Words found in the transcript: each a link to that moment of the recording (the page's #t= seeks
  // every player there).
  const names = Object.fromEntries(r.participants.map(p => [p.id, p.display_name || p.id]));
  const hits = el('ul', {class: 'hits', 'aria-label': 'Where the words were said'},
    ...r.transcript_hits.map(h => el('li', {},
      el('a', {href: `${page}#t=${Math.floor(h.start)}`, text: clock(h.start)}),
      ` ${names[h.speaker] ?? h.speaker}: ${h.text.trim()}`)));
  return [main, el('tr', {class: 'hit-row'}, el('td', {colspan: '7'}, hits))];
}

function clock(s) {
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

async function search() {
  const mine = ++pending;
  const q = query();
  history.replaceState(null, '', '?' + q.toString());
  say('Searching…');
  form.setAttribute('aria-busy', 'true');
  try {
    const page = await api('GET', '/v1/recordings?' + q.toString());
    if (mine !== pending) return;  // a newer search answered or will answer
    body.replaceChildren(...page.items.flatMap(row));
    markSorted();
    const last = page.offset + page.items.length;
    // Above the server's count limit, total is a lower bound (total_exact false): "10,000+"
    const total = page.total.toLocaleString('en-US') + (page.total_exact === false ? '+' : '');
    say(page.total === 1 && page.total_exact !== false ? '1 recording'
      : page.total ? `${total} recordings` : 'No recording matches.');
    info.textContent = page.total ? `${page.offset + 1}–${last} of ${total}` : '';
    prev.disabled = page.offset === 0;
    next.disabled = page.next_offset === null;
    next.dataset.offset = page.next_offset ?? '';
    prev.dataset.offset = Math.max(0, page.offset - page.limit);
  } catch (error) {
    if (mine === pending) failed(error);
  } finally {
    if (mine === pending) form.removeAttribute('aria-busy');
  }
}

// Filters from the address (a search can be bookmarked and shared).
const initial = new URLSearchParams(location.search);
for (const [name, value] of initial) {
  const field = form.elements.namedItem(name);
  if (!field || name === 'offset') continue;
  if (name === 'tag') field.value = field.value ? `${field.value},${value}` : value;
  else if (name.startsWith('started_')) field.value = value.slice(0, 16);
  else field.value = value;
}
offset = Number(initial.get('offset') || 0) || 0;

form.addEventListener('submit', e => { e.preventDefault(); offset = 0; search(); });
form.addEventListener('reset', () => setTimeout(() => { offset = 0; search(); }));
for (const field of [sortField, orderField]) field.addEventListener('change', () => { offset = 0; search(); });
prev.addEventListener('click', () => { offset = Number(prev.dataset.offset); search(); });
next.addEventListener('click', () => { offset = Number(next.dataset.offset); search(); });
search();
