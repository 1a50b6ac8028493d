import {api, request, can, config, el, say, utc, seconds, bytes, statusBadge, failed} from './common.js';
import {SyncGroup} from './sync.js';
import './transcript.js';  // the transcript beside the players (recorder/transcripts)

const rid = config.recording;
const base = `/v1/recordings/${encodeURIComponent(rid)}`;
const MEDIA = /\.(webm|mkv|mka|mp4|m4a)$/i;
const ENCRYPTED_NOTICE = 'Encrypted — playback needs the service\'s playback identity.';
let detail = null;

const $ = id => document.getElementById(id);
const when = iso => (iso ? Date.parse(iso) / 1000 : null);

function fact(name, value) {
  return [el('dt', {text: name}), el('dd', {}, value ?? '—')];
}

function isComposite(name) {
  return /^composite[^/]*$/.test(name.split('/').pop()) && MEDIA.test(name);
}

function encrypted(d, files) {
  const names = [...(d.manifest?.objects || []).map(o => o.name), ...files.map(f => f.name)];
  return names.some(n => n.endsWith('.age'));
}

function showAbout(d) {
  $('about').hidden = false;
  $('meta').replaceChildren(
    ...fact('Room', d.room_id), ...(d.recorder ? fact('Recorder', d.recorder) : []),  // a fleet: its recorder node
    ...fact('Call id', d.call_id), ...fact('Status', statusBadge(d.status)),
    ...fact('Started (UTC)', utc(d.started_at)), ...fact('Finished (UTC)', utc(d.finished_at)),
    ...fact('Duration', seconds(d.duration)), ...fact('Tracks', String(d.tracks)), ...fact('Size', bytes(d.bytes)),
    ...fact('Tags', Object.entries(d.metadata).map(([k, v]) => `${k}: ${v}`).join(', ') || '—'),
    ...fact('Retention until', utc(d.retention_until)),
    ...fact('Legal hold', d.legal_hold ? `yes — ${d.legal_hold_reason || 'no reason given'}` : 'no'));
  $('participants').replaceChildren(...d.participants.map(p => el('li', {},
    el('strong', {text: p.display_name || p.id}), ` (${p.id}) joined ${utc(p.joined_at)}`,
    p.left_at ? `, left ${utc(p.left_at)}` : '',
    Object.keys(p.metadata).length ? ` — ${Object.entries(p.metadata).map(([k, v]) => `${k}: ${v}`).join(', ')}` : '')));
}

// Joins, leaves, pauses (who, why), gaps and losses, in seconds from the recording's start.
function events(d) {
  const t0 = when(d.started_at);
  const name = pid => { const p = d.participants.find(x => x.id === pid); return p ? (p.display_name || p.id) : pid; };
  const out = [];
  for (const p of d.participants) {
    if (p.joined_at) out.push({at: when(p.joined_at) - t0, kind: 'join', text: `${name(p.id)} joined`});
    if (p.left_at) out.push({at: when(p.left_at) - t0, kind: 'leave', text: `${name(p.id)} left`});
  }
  for (const p of d.pauses) {
    const who = p.participant ? name(p.participant) : 'everyone';
    const end = p.end_time ? ` until ${seconds(when(p.end_time) - t0)}` : ' (still paused)';
    out.push({at: when(p.start_time) - t0, kind: 'pause',
      text: `paused (${who})${end} by ${p.by || 'unknown'}: ${p.reason || 'no reason given'}`});
  }
  for (const t of d.manifest?.tracks || []) {
    for (const g of t.gaps || []) {
      out.push({at: g.start_time - t0, kind: 'gap',
        text: `gap in ${t.name}: ${(g.end_time - g.start_time).toFixed(1)} s, ${g.reason}, ${g.packets_lost} packets lost`});
    }
  }
  for (const t of d.track_list) {
    if (t.packets_lost) out.push({at: null, kind: 'loss', text: `${t.name}: ${t.packets_lost} packets lost in all`});
  }
  return out.sort((a, b) => (a.at ?? Infinity) - (b.at ?? Infinity));
}

function showEvents(d, group) {
  const list = events(d);
  $('events').replaceChildren(...(list.length ? list.map(e => el('li', {class: `ev-${e.kind}`},
    e.at === null ? '' : el('span', {class: 'mono', text: seconds(e.at) + ' '}), e.text)) : [el('li', {text: 'none'})]));
  $('timeline').replaceChildren(...list.filter(e => e.at !== null).map(e => el('li', {class: `ev-${e.kind}`},
    el('button', {type: 'button', class: 'link', disabled: !group,
      onclick: () => group && group.seek(e.at), text: `${seconds(e.at)} ${e.text}`}))));
}

// The newest redacted copy of each file: original name -> 'redacted-<n>/name' (recorder/transcripts).
function latestCopies(files) {
  const best = new Map();
  for (const f of files) {
    const m = /^redacted-(\d+)\/(.+)$/.exec(f.name);
    if (m && !((best.get(m[2])?.n ?? 0) >= Number(m[1]))) best.set(m[2], {n: Number(m[1]), name: f.name});
  }
  return best;
}

function players(d, files, isEncrypted) {
  const t0 = when(d.started_at);
  const wanted = [];
  const listed = new Set(files.map(f => f.name));
  const copies = latestCopies(files);
  const kindOf = n => (/audio|\.(m4a|mka)$/i.test(n) ? 'audio' : 'video');
  // A redacted composite leads (it carries the sound); the original, when it is still kept, follows muted.
  for (const [orig, c] of copies) {
    if (isComposite(orig)) {
      wanted.push({name: c.name, label: `Composite — redacted${listed.has(orig) ? '' : ' (original deleted)'}`,
        composite: true, kind: kindOf(orig), start: null});
    }
  }
  for (const f of files.filter(f => isComposite(f.name) && !f.name.startsWith('redacted-'))) {
    wanted.push({name: f.name, label: copies.has(f.name) ? 'Composite — original, unredacted' : 'Composite',
      composite: true, kind: kindOf(f.name), start: null});
  }
  const tracks = (d.manifest?.tracks || []).filter(t => t.file);
  const first = Math.min(...tracks.map(t => t.first_wallclock ?? Infinity));
  const name = pid => { const p = d.participants.find(x => x.id === pid); return p ? (p.display_name || p.id) : pid; };
  for (const t of tracks) {
    const label = `${name(t.participant_id)} — ${t.kind} (${t.codec})`;
    const copy = copies.get(t.file);
    if (listed.has(t.file) || !copy) {  // the original (a deleted one without a copy still says so when played)
      wanted.push({name: t.file, label, kind: t.kind, start: t.first_wallclock ?? first});
    } else {  // deleted after a redaction: its redacted copy instead
      wanted.push({name: copy.name, label: `${label} — redacted`, kind: t.kind, start: t.first_wallclock ?? first});
    }
  }
  if (!wanted.length) return null;
  const origin = isFinite(first) ? first : t0;
  const made = wanted.map(w => {
    const media = el(w.kind === 'audio' ? 'audio' : 'video', {controls: true, preload: 'auto',
      src: `/console/play/${encodeURIComponent(rid)}?name=${encodeURIComponent(w.name)}`,
      'aria-label': `${w.label}`, 'data-file': w.name});
    // the leading composites carry the mix (the redacted ones when there are: never both at once)
    const leading = wanted[0].composite ? wanted[0].label.startsWith('Composite — redacted') : null;
    media.muted = leading !== null && !(w.composite && w.label.startsWith('Composite — redacted') === leading);
    const problem = el('p', {class: 'error', hidden: true});
    media.addEventListener('error', () => {
      problem.hidden = false;
      problem.textContent = isEncrypted ? ENCRYPTED_NOTICE
        : `This browser cannot play ${w.name} (${w.kind}); download it below.`;
    });
    const figure = el('figure', {class: `player ${w.composite ? 'composite' : ''}`},
      media, el('figcaption', {text: w.label}), problem);
    $('players').append(figure);
    return {media, offset: w.start === null ? 0 : Math.max(0, w.start - origin)};
  });
  const duration = d.duration ?? Math.max(...tracks.map(t => (t.first_wallclock ?? origin) - origin + (t.duration ?? 0)));
  const group = new SyncGroup(made, duration);
  window.consoleSync = group;  // for tests and the curious
  const seek = $('seek');
  seek.max = String(Math.max(duration || 0, 0.1));
  const play = $('play');
  play.addEventListener('click', () => (group.playing ? group.pause() : group.play()));
  seek.addEventListener('input', () => group.seek(Number(seek.value)));
  group.onchange((position, playing) => {
    if (document.activeElement !== seek) seek.value = String(position);
    $('clock').textContent = `${seconds(position)} / ${seconds(duration)}`;
    play.textContent = playing ? 'Pause' : 'Play';
    play.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  });
  $('players-section').hidden = false;
  group.changed();
  return group;
}

function showDownloads(files) {
  $('downloads-section').hidden = false;
  const kind = f => (isComposite(f.name) ? 0 : /evidence/i.test(f.name) ? 1 : MEDIA.test(f.name) && !f.name.includes('/') ? 2 : 3);
  const label = f => ['Composite — ', 'Evidence bundle — ', 'Original — ', ''][kind(f)] + f.name;
  const item = f => el('li', {}, el('a', {href: `/console/api${base}/file?name=${encodeURIComponent(f.name)}`,
    download: f.name.split('/').pop(), text: label(f)}), ` (${bytes(f.size)})`);
  const sorted = [...files].sort((a, b) => kind(a) - kind(b) || a.name.localeCompare(b.name));
  const main = sorted.filter(f => !f.name.includes('/'));
  const parts = sorted.filter(f => f.name.includes('/'));
  const children = main.map(item);
  if (!files.length) children.push(el('li', {text: 'no stored files yet'}));
  if (parts.length) {
    children.push(el('li', {}, el('details', {}, el('summary', {text: `Segments and other parts (${parts.length})`}),
      el('ul', {}, ...parts.map(item)))));
  }
  if (can.report) {
    const report = `/console/api${base}/report`;
    children.push(el('li', {}, 'Forensic report: ', el('a', {href: `${report}?format=html`, target: '_blank', rel: 'noopener',
      text: 'HTML'}), ' · ', el('a', {href: `${report}?format=pdf`, download: `${rid}-report.pdf`, text: 'PDF'})));
  }
  $('downloads').replaceChildren(...children);
}

function showIntegrity(result) {
  const badge = $('badge');
  if (!result || result.checked_at === null) {
    badge.className = 'badge unknown';
    badge.textContent = 'not checked';
    $('checked').textContent = can.verify ? '' : '(a supervisor, auditor or admin can verify it)';
    return;
  }
  badge.className = `badge ${result.ok ? 'ok' : 'bad'}`;
  badge.textContent = result.ok ? 'intact' : 'NOT intact';
  $('checked').textContent = `checked ${utc(result.checked_at)} UTC by ${result.by}`;
}

async function verify() {
  const button = $('verify');
  button.disabled = true;
  say('Verifying…');
  try {
    const result = await api('POST', `${base}/verify`);
    $('problems').replaceChildren(...result.problems.map(p => el('li', {text: `${p.kind}: ${p.name || ''} ${p.detail || ''}`})));
    showIntegrity(await request(`/console/integrity/${encodeURIComponent(rid)}`));
    say(result.ok ? `Verified: ${result.objects_checked} objects intact.` : `${result.problems.length} problems found.`,
      result.ok ? '' : 'error');
    loadAudit();
  } catch (error) { failed(error); } finally { button.disabled = false; }
}

function showHold(d) {
  $('hold-section').hidden = false;
  $('hold-state').textContent = d.legal_hold ? `Under legal hold: ${d.legal_hold_reason || 'no reason given'}` : 'Not under legal hold.';
  $('hold-lift').hidden = !d.legal_hold;
  $('hold-place').textContent = d.legal_hold ? 'Change reason' : 'Place hold';
}

async function hold(on) {
  const reason = $('hold-reason').value.trim();
  if (on && !reason) { say('A legal hold needs a reason.', 'error'); $('hold-reason').focus(); return; }
  try {
    detail = await api('PUT', `${base}/legal-hold`, on ? {hold: true, reason} : {hold: false});
    showHold(detail);
    showAbout(detail);
    say(on ? 'Legal hold placed.' : 'Legal hold lifted.');
    loadAudit();
  } catch (error) { failed(error); }
}

async function remove() {
  if (!window.confirm(`Delete the files of recording ${rid}? This cannot be undone.`)) return;
  try {
    const done = await api('DELETE', base);
    say(`Deleted: ${done.objects_deleted} files.`);
    loadAudit();
  } catch (error) { failed(error); }
}

async function loadAudit() {
  if (!can.trail) return;
  $('audit-section').hidden = false;
  try {
    // The recording's own trail (supervisors may read it too), oldest first, page by page; shown newest first.
    const entries = [];
    let after = 0;
    for (let pages = 0; pages < 10 && after !== null; pages++) {
      const page = await api('GET', `${base}/audit?limit=1000&after=${after}`);
      entries.push(...page.entries);
      after = page.next_after;
    }
    $('audit').querySelector('tbody').replaceChildren(...entries.reverse().map(e => el('tr', {},
      el('td', {text: String(e.seq)}), el('td', {text: utc(e.at)}), el('td', {text: `${e.actor} (${e.role ?? '—'})`}),
      el('td', {text: e.action}), el('td', {text: e.outcome}),
      el('td', {text: Object.entries(e.detail).map(([k, v]) => `${k}=${v}`).join(' ')}))));
  } catch (error) { failed(error); }
}

async function main() {
  if (can.verify) { $('verify').hidden = false; $('verify').addEventListener('click', verify); }
  if (can.hold) {
    $('hold-form').addEventListener('submit', e => { e.preventDefault(); hold(true); });
    $('hold-lift').addEventListener('click', () => hold(false));
  }
  if (can.delete) { $('delete-section').hidden = false; $('delete').addEventListener('click', remove); }
  request(`/console/integrity/${encodeURIComponent(rid)}`).then(showIntegrity, failed);
  if (can.view) {
    try {
      detail = await api('GET', base);
      // The manifest lists every stored object (a listing through /links would be audited as a download).
      const files = (detail.manifest?.objects || []).map(o => ({name: o.name, size: o.size}));
      showAbout(detail);
      const isEncrypted = encrypted(detail, files);
      if (isEncrypted) $('notice').replaceChildren(el('p', {class: 'notice', role: 'note', text: ENCRYPTED_NOTICE}));
      const group = detail.status === 'deleted' ? null : players(detail, files, isEncrypted);
      showEvents(detail, group);
      if (can.download) showDownloads(files);
      if (can.hold) showHold(detail);
      say(detail.status === 'recording' ? 'Recording now: the files appear when it finishes.' : '');
    } catch (error) { failed(error); }
  } else {
    say('Your role sees this recording\'s integrity and audit trail only.');
  }
  loadAudit();
}

main();
