// One timeline for several media elements: each plays `offset` seconds after the timeline's start; the
// leader (the composite, else the earliest track) carries the clock, the others follow it within
// TOLERANCE seconds. Seeking or playing any of them (their own controls, or the shared transport) moves
// all of them.
const TOLERANCE = 0.08;

export class SyncGroup {
  constructor(players, duration) {
    this.players = players;          // [{media, offset}]
    this.duration = duration;
    this.leader = players[0];
    this.playing = false;
    this.listeners = [];
    for (const p of players) this.watch(p);
    this.timer = setInterval(() => this.follow(), 100);
  }

  get position() {
    const l = this.leader;
    return l.media.currentTime + l.offset;
  }

  onchange(fn) { this.listeners.push(fn); }

  changed() { for (const fn of this.listeners) fn(this.position, this.playing); }

  watch(p) {
    const m = p.media;
    m.addEventListener('seeking', () => {
      if (p.ours !== undefined && Math.abs(m.currentTime - p.ours) < 0.05) return;  // a seek we made
      this.seek(m.currentTime + p.offset, p);
    });
    m.addEventListener('play', () => { if (!this.playing && !p.auto) this.play(); });
    m.addEventListener('pause', () => { if (this.playing && !p.auto && !m.ended) this.pause(); });
    m.addEventListener('timeupdate', () => { if (p === this.leader) this.changed(); });
  }

  set(p, time) {
    p.ours = time;
    p.media.currentTime = time;
  }

  seek(position, from = null) {
    position = Math.max(0, Math.min(position, this.duration || position));
    for (const p of this.players) {
      if (p === from) continue;
      this.set(p, Math.max(0, position - p.offset));
    }
    this.follow();
    this.changed();
  }

  async play() {
    this.playing = true;
    this.follow();
    this.changed();
  }

  pause() {
    this.playing = false;
    for (const p of this.players) { p.auto = true; p.media.pause(); p.auto = false; }
    this.changed();
  }

  // Keeps every follower where the leader says, playing only inside its own stretch of the timeline.
  follow() {
    const now = this.position;
    for (const p of this.players) {
      const m = p.media;
      const target = now - p.offset;
      const inside = target >= 0 && (!isFinite(m.duration) || target < m.duration);
      if (p !== this.leader && inside && Math.abs(m.currentTime - target) > TOLERANCE && !m.seeking) {
        this.set(p, target);
      }
      const wanted = this.playing && (inside || p === this.leader);
      if (wanted && m.paused && !m.ended) {
        p.auto = true;
        m.play().catch(() => {}).finally(() => { p.auto = false; });
      } else if (!wanted && !m.paused) {
        p.auto = true; m.pause(); p.auto = false;
      }
    }
    if (this.playing && this.leader.media.ended) this.pause();
  }
}
