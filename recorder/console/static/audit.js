import {api, el, say, utc, failed} from './common.js';

const form = document.getElementById('filter');
const body = document.querySelector('#audit tbody');
const more = document.getElementById('more');
let after = 0;

function target(t) {
  if (!t) return '—';
  const rid = t.split('/')[0];
  return /^\d{8}T\d{6}Z-/.test(rid) ? el('a', {href: `/console/recordings/${encodeURIComponent(rid)}`, text: t}) : t;
}

async function load(reset) {
  if (reset) { after = 0; body.replaceChildren(); }
  const q = new URLSearchParams({after: String(after), limit: '200'});
  for (const name of ['action', 'actor', 'target']) {
    const v = String(new FormData(form).get(name) || '').trim();
    if (v) q.set(name, v);
  }
  say('Loading…');
  try {
    const page = await api('GET', '/v1/audit?' + q.toString());
    body.append(...page.entries.map(e => el('tr', {},
      el('td', {text: String(e.seq)}), el('td', {text: utc(e.at)}), el('td', {text: `${e.actor} (${e.role ?? '—'})`}),
      el('td', {text: e.action}), el('td', {}, target(e.target)), el('td', {text: e.outcome}),
      el('td', {text: Object.entries(e.detail).map(([k, v]) => `${k}=${v}`).join(' ')}))));
    after = page.next_after ?? after;
    more.hidden = page.next_after === null;
    say(`${body.children.length} entries shown.`);
  } catch (error) { failed(error); }
}

form.addEventListener('submit', e => { e.preventDefault(); load(true); });
more.addEventListener('click', () => load(false));
load(true);
