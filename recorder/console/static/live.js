import {api, request, can, el, say, failed} from './common.js';

const REFRESH_MS = 2000;
const rooms = document.getElementById('rooms');
let first = true;
let busy = false;

// The reason for a pause, asked in a modal dialog (keyboard: it takes the focus, Enter pauses, Escape
// cancels, and the focus goes back to the button that opened it). Resolves to the reason, or null.
const dialog = document.getElementById('pause-dialog');
const reasonField = document.getElementById('pause-reason');
const reasonError = document.getElementById('pause-error');
let answer = null;

document.getElementById('pause-form').addEventListener('submit', e => {
  if (e.submitter?.value !== 'pause') return;  // Cancel: the dialog closes
  if (!reasonField.value.trim()) {
    e.preventDefault();
    reasonError.textContent = 'A pause needs a reason.';
    reasonField.focus();
  }
});
dialog.addEventListener('close', () => {
  const reason = reasonField.value.trim();
  const done = answer;
  answer = null;
  if (done) done(dialog.returnValue === 'pause' && reason ? reason : null);
});

function reasonFor(who) {
  if (answer) return Promise.resolve(null);
  document.getElementById('pause-h').textContent = `Pause ${who}`;
  document.getElementById('pause-what').textContent = `Nothing of ${who} is recorded until someone resumes it.`;
  reasonField.value = '';
  reasonError.textContent = '';
  dialog.returnValue = '';
  return new Promise(resolve => {
    answer = resolve;
    dialog.showModal();
    reasonField.focus();
  });
}

async function act(what, method, path, body) {
  try {
    await api(method, path, body);
    say(`${what}: done.`);
  } catch (error) { failed(error); }
  refresh();
}

// A fleet lists a room once per recorder whose SFU has it: "room-7 on rec-a". Pause and resume go by the
// recording's id (one recorder); a start or stop of a room id that two recorders have names the recorder.
const on = room => room.recorder ? ` on ${room.recorder}` : '';

function pauseButtons(room, participant, paused) {
  const recId = room.recording_id;
  if (!recId || !can.pause) return [];
  const path = `/v1/recordings/${encodeURIComponent(recId)}` + (participant ? `/participants/${encodeURIComponent(participant)}` : '');
  const who = participant ? `participant ${participant}${on(room)}` : `room ${room.room_id}${on(room)}`;
  if (paused) {
    return [el('button', {type: 'button', text: 'Resume', 'aria-label': `Resume ${who}`,
      onclick: () => act(`Resume ${who}`, 'POST', `${path}/resume`)})];
  }
  const label = `Pause ${who}`;
  return [el('button', {type: 'button', text: 'Pause', 'aria-label': label, onclick: async () => {
    const reason = await reasonFor(who);
    // The list was redrawn meanwhile: give the focus back to this room's (or participant's) button.
    [...rooms.querySelectorAll('button')].find(b => b.getAttribute('aria-label') === label)?.focus();
    if (reason) act(label, 'POST', `${path}/pause`, {reason});
  }})];
}

function trackRows(stats, recId) {
  return stats.filter(t => recId && t.recording_id === recId).map(t => el('tr', {},
    el('td', {text: t.participant}), el('td', {text: `${t.track} (${t.kind}, ${t.codec})`}),
    el('td', {text: t.kbit_per_second === null ? '—' : `${t.kbit_per_second} kbit/s`}),
    el('td', {text: t.packets_per_second === null ? '—' : `${t.packets_per_second}/s`}),
    el('td', {class: (t.loss_percent ?? 0) > 2 ? 'warn' : '', text: t.loss_percent === null ? '—' : `${t.loss_percent} %`}),
    el('td', {text: `${t.packets_lost} / ${t.packets_received}`})));
}

function card(room, stats, shared) {
  const live = Boolean(room.recording_id);
  const down = room.recorder_state && room.recorder_state !== 'alive';  // nothing in progress there
  const name = `room ${room.room_id}${on(room)}`;
  const heading = el('h2', {}, `Room ${room.room_id} `,
    room.recorder ? el('span', {class: 'recorder', text: `on recorder ${room.recorder} `}) : '',
    el('span', {class: `badge ${room.paused ? 'status-paused' : live ? 'status-recording' : 'unknown'}`,
      text: down ? `recorder ${room.recorder_state}` : room.paused ? 'paused' : live ? '● recording'
        : room.recording ? 'recorded (waiting for media)' : 'not recorded'}));
  const path = `/v1/rooms/${encodeURIComponent(room.room_id)}`;
  const named = shared && room.recorder ? `?recorder=${encodeURIComponent(room.recorder)}` : '';
  const controls = el('div', {class: 'controls'}, ...pauseButtons(room, null, room.paused));
  if (!down && can.stop && (live || room.recording)) {
    controls.append(el('button', {type: 'button', class: 'danger', text: 'Stop recording', 'aria-label': `Stop recording ${name}`,
      onclick: () => window.confirm(`Stop recording ${name}?`) &&
        act(`Stop ${room.room_id}${on(room)}`, 'POST', `${path}/stop${named}`)}));
  } else if (!down && can.start && !room.recording) {
    controls.append(el('button', {type: 'button', text: 'Start recording', 'aria-label': `Start recording ${name}`,
      onclick: () => act(`Start ${room.room_id}${on(room)}`, 'POST', `${path}/start${named}`, {})}));
  }
  const people = el('ul', {class: 'people'}, ...room.participants.map(p => el('li', {},
    el('strong', {text: p.display_name || p.id}), ` (${p.id}) `, p.paused ? el('span', {class: 'badge status-paused', text: 'paused'}) : '',
    ' ', ...pauseButtons(room, p.id, p.paused && !room.paused))));
  const rows = trackRows(stats, room.recording_id);
  const table = rows.length ? el('div', {class: 'table-wrap'}, el('table', {class: 'results'},
    el('caption', {class: 'visually-hidden', text: `Tracks of ${name}`}),
    el('thead', {}, el('tr', {}, ...['Participant', 'Track', 'Bit rate', 'Packets', 'Loss now', 'Lost / received']
      .map(h => el('th', {scope: 'col', text: h})))), el('tbody', {}, ...rows))) : null;
  const link = live && can.view ? el('p', {}, el('a', {href: `/console/recordings/${encodeURIComponent(room.recording_id)}`,
    text: `Recording ${room.recording_id}`})) : null;
  return el('section', {class: 'card room', 'data-room': room.room_id, 'data-recorder': room.recorder || ''},
    heading, controls, link, people, table);
}

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const headers = first ? {} : {'X-Console-Poll': '1'};  // the first look is audited, refreshes are not
    const [list, stats] = await Promise.all([api('GET', '/v1/rooms', undefined, headers), request('/console/live-tracks')]);
    first = false;
    const focused = document.activeElement?.getAttribute('aria-label');
    const seen = {};  // a room id listed for two recorders (two SFUs): its start and stop name the recorder
    list.rooms.forEach(r => { seen[r.room_id] = (seen[r.room_id] || 0) + 1; });
    rooms.replaceChildren(...(list.rooms.length ? list.rooms.map(r => card(r, stats.tracks, seen[r.room_id] > 1))
      : [el('p', {text: 'No room is known yet.'})]));
    if (focused) [...rooms.querySelectorAll('button')].find(b => b.getAttribute('aria-label') === focused)?.focus();
    const recording = list.rooms.filter(r => r.recording_id).length;
    const words = recording === 1 ? '1 room is' : `${recording} rooms are`;
    if (!document.getElementById('status').classList.contains('error')) say(`${words} being recorded now.`);
  } catch (error) { failed(error); } finally { busy = false; }
}

if (can.start) {
  const form = document.getElementById('start-form');
  form.hidden = false;
  form.addEventListener('submit', e => {
    e.preventDefault();
    const room = form.elements.namedItem('room').value.trim();
    const callId = form.elements.namedItem('call_id').value.trim();
    act(`Start ${room}`, 'POST', `/v1/rooms/${encodeURIComponent(room)}/start`, callId ? {call_id: callId} : {});
  });
}
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
