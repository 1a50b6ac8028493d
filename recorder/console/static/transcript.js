// The recording page's transcript (recorder/transcripts): who said what, beside the players; each line's
// time is a button that moves every player there (the page's SyncGroup, window.consoleSync). A link to
// the page with #t=SECONDS (a search hit) starts the players there. Text only: nothing is parsed as HTML.
import {api, config, el, seconds, ApiError} from './common.js';

const rid = config.recording;

function seekTo(at) {
  const group = window.consoleSync;
  if (group) group.seek(at);
}

function render(transcript) {
  const section = el('section', {id: 'transcript-section', class: 'card', 'aria-labelledby': 'transcript-h'},
    el('h2', {id: 'transcript-h', text: 'Transcript'}));
  const redacted = transcript.redactions?.length || 0;
  section.append(el('p', {class: 'muted', text: `Model ${transcript.model}` +
    (redacted ? ` · ${redacted} interval${redacted > 1 ? 's' : ''} redacted` : '')}));
  const list = el('ol', {id: 'transcript', class: 'transcript'});
  for (const s of transcript.segments || []) {
    list.append(el('li', {'data-start': String(s.start)},
      el('button', {type: 'button', class: 'link mono', 'aria-label': `Play from ${seconds(s.start)}`,
        onclick: () => seekTo(s.start), text: seconds(s.start)}),
      ' ', el('strong', {text: s.speaker}), ': ', el('span', {text: s.text.trim()})));
  }
  if (!list.children.length) list.append(el('li', {text: 'Nothing was said.'}));
  section.append(list);
  const players = document.getElementById('players-section');
  players.after(section);
}

function jumpFromHash() {
  const m = /^#t=(\d+(?:\.\d+)?)$/.exec(window.location.hash);
  if (!m) return;
  const at = Number(m[1]);
  const started = Date.now();
  const wait = () => {  // the players exist once the recording's detail has loaded
    if (window.consoleSync) seekTo(at);
    else if (Date.now() - started < 30000) setTimeout(wait, 100);
  };
  wait();
}

async function showTranscript() {
  try {
    render(await api('GET', `/v1/recordings/${encodeURIComponent(rid)}/transcript`));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;  // 404: no transcript; 403: the role may not read it
  }
  jumpFromHash();
}

// The server says whether there is one (config.transcript): a recording without one is not asked for it,
// so the page makes no request that fails.
if (rid && config.transcript) showTranscript();
else if (rid) jumpFromHash();
