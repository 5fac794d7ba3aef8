"use strict";
/* calmline's shared script, for the overlay, the floor's live view and the replay's "overlay as it was".

   Calmline.reduce(state, event) folds one event (docs/protocol.md) into a call's state: the cues still up,
   each party's level, talking and pace, the talk share and the recent transcript. A `held` cue is up until
   its `cue_end` (or a `stats` that no longer lists it); an older cue, without `held`, for a few seconds.
   The talk share and pace are the server's (`stats`) once it has sent them. The pages only draw that
   state, so the three show a call the same way. Which cue shows is decided by each cue's `rank` (higher is
   more urgent), which the monitor sends: no page keeps a list of cue kinds. Plain script, no build step:
   it defines one global, `Calmline`. */

(() => {
  const PARTIES = ["agent", "customer"];
  const FLOOR_DB = -60;  // meters show -60..0 dBFS

  const isParty = (p) => PARTIES.includes(p);
  const num = (x) => typeof x === "number" && Number.isFinite(x);
  const text = (x) => (typeof x === "string" ? x : "");  // a relayed event's text may be anything
  const record = (x) => x !== null && typeof x === "object";

  /** A fresh call state; `lines` is how many transcript lines it keeps. */
  function state({ lines = 3 } = {}) {
    return {
      lines,
      now: 0,                               // the latest audio time seen
      started: false,
      ended: false,
      cues: new Map(),                      // kind -> the newest cue of that kind, in arrival order
      levels: { agent: null, customer: null },
      talking: { agent: false, customer: false },
      wpm: { agent: null, customer: null },
      talk: { agent: 0, customer: 0 },      // seconds of each party's closed talk spurts
      stats: null,                          // the server's latest `stats`: {talk_s, share, wpm, t}
      note: null,                           // the latest positive note of a cue_end: {kind, text, t, at}
      finals: [],                           // the last `lines` final transcript lines
      interim: {},                          // party -> that party's interim line
    };
  }

  /** A transcript event as a line: {party, start, end, t, text, final}. */
  function line(ev) {
    const t = num(ev.t) ? ev.t : 0;
    const start = num(ev.start) ? ev.start : t;
    return { party: ev.party, start, end: num(ev.end) ? Math.max(ev.end, start) : start, t,
             text: text(ev.text).trim(), final: ev.final !== false };
  }

  const apply = {
    call_start(st) {
      Object.assign(st, state({ lines: st.lines }), { started: true });
    },
    call_end(st) {
      st.ended = true;
      st.cues.clear();
      for (const p of PARTIES) {
        st.levels[p] = null;
        st.talking[p] = false;
      }
    },
    levels(st, ev) {
      for (const p of PARTIES) {
        if (record(ev.levels) && p in ev.levels) st.levels[p] = num(ev.levels[p]) ? ev.levels[p] : null;
        if (record(ev.talking)) st.talking[p] = Boolean(ev.talking[p]);
      }
    },
    cue(st, ev, at) {
      const kind = text(ev.kind);
      if (!kind) return;
      // A newer cue of the same kind replaces the older one and restarts its time.
      st.cues.delete(kind);
      st.cues.set(kind, { kind, text: text(ev.text) || kind, reason: text(ev.reason), t: num(ev.t) ? ev.t : st.now,
                          rank: num(ev.rank) ? ev.rank : 0, at: num(at) ? at : null, held: ev.held === true });
    },
    cue_end(st, ev, at) {
      const kind = text(ev.kind);
      st.cues.delete(kind);
      const note = text(ev.note).trim();
      if (note) st.note = { kind, text: note, t: num(ev.t) ? ev.t : st.now, at: num(at) ? at : null };
    },
    stats(st, ev) {
      const talk = {};
      const wpm = {};
      for (const p of PARTIES) {
        talk[p] = record(ev.talk_s) && num(ev.talk_s[p]) ? ev.talk_s[p] : 0;
        wpm[p] = record(ev.wpm) && num(ev.wpm[p]) ? ev.wpm[p] : null;
        st.wpm[p] = wpm[p];
      }
      st.stats = { t: num(ev.t) ? ev.t : st.now, talk_s: talk, share: num(ev.share) ? ev.share : null, wpm };
      if (Array.isArray(ev.cues)) {  // a held cue whose cue_end was missed goes when the server no longer has it up
        for (const [kind, cue] of st.cues) if (cue.held && !ev.cues.includes(kind)) st.cues.delete(kind);
      }
    },
    pace(st, ev) {
      for (const p of PARTIES) if (record(ev.wpm) && p in ev.wpm) st.wpm[p] = num(ev.wpm[p]) ? ev.wpm[p] : null;
    },
    talk_end(st, ev) {
      if (isParty(ev.party) && num(ev.start) && num(ev.t)) st.talk[ev.party] += Math.max(0, ev.t - ev.start);
    },
    transcript(st, ev) {
      // An interim is replaced by the party's next interim or final; a final replaces the same party's
      // earlier finals that start at or after its start (a phrase heard again, longer).
      if (!isParty(ev.party)) return;
      const l = line(ev);
      if (!l.final) {
        if (l.text) st.interim[l.party] = l;
        else delete st.interim[l.party];
        return;
      }
      delete st.interim[l.party];
      const kept = st.finals.filter((f) => f.party !== l.party || f.start < l.start);
      st.finals = (l.text ? [...kept, l] : kept).slice(-st.lines);
    },
  };

  /** Folds one event into `st` (in place) and returns it. `at` (seconds on any steady clock, e.g.
      performance.now() / 1000) is when the event arrived: a live page ages cues by it too. */
  function reduce(st, ev, at) {
    if (!record(ev) || !Object.hasOwn(apply, ev.type)) return st;  // unknown types are ignored
    apply[ev.type](st, ev, at);
    if (num(ev.t)) st.now = Math.max(st.now, ev.t);
    return st;
  }

  /** Seconds a cue has been up: in audio time, or on the clock of `at` when that is longer (a live page
      keeps counting while no events come). A held cue does not age: it is up until its cue_end. */
  function cueAge(st, cue, wall) {
    if (cue.held) return 0;
    const audio = st.now - cue.t;
    return num(wall) && num(cue.at) ? Math.max(audio, wall - cue.at) : audio;
  }

  /** The cue to show: of those up (held, or up for less than `cueS`), the one of highest rank (the first to
      come on a tie). Cues past `cueS` are let go; a lower cue shows again once the one above it ends. */
  function currentCue(st, cueS, wall) {
    let best = null;
    for (const [kind, cue] of st.cues) {
      if (cueAge(st, cue, wall) >= cueS) st.cues.delete(kind);
      else if (!best || cue.rank > best.rank) best = cue;
    }
    return best;
  }

  /** The positive note to show (a cue_end's `note`) while it is younger than `noteS`, else null. */
  function currentNote(st, noteS, wall) {
    const n = st.note;
    if (!n) return null;
    const age = num(wall) && num(n.at) ? Math.max(st.now - n.t, wall - n.at) : st.now - n.t;
    return age < noteS ? n : null;
  }

  /** The transcript lines to show, oldest first: finals, then (unless `interim` is false) each party's
      interim. An interim re-hears its party's phrase from its start, so it hides that party's finals from
      there on: a phrase never shows twice. */
  function lines(st, { interim = true } = {}) {
    const open = interim ? Object.values(st.interim) : [];
    const finals = st.finals.filter((f) => !open.some((i) => i.party === f.party && f.start >= i.start));
    return [...finals, ...open].slice(-st.lines);
  }

  /** The agent's share of the talk (0..1): the server's (stats) once sent, else of the closed spurts seen;
      null before anyone talked. */
  function share(st) {
    if (st.stats && num(st.stats.share)) return st.stats.share;
    const total = st.talk.agent + st.talk.customer;
    return total > 0 ? st.talk.agent / total : null;
  }

  /** A whole call's final transcript from its events in arrival order: the lines no later final replaced,
      by start time. */
  function finalLines(events) {
    let kept = [];
    for (const ev of events) {
      if (!record(ev) || ev.type !== "transcript" || ev.final === false || !isParty(ev.party)) continue;
      const l = line(ev);
      kept = kept.filter((x) => x.party !== l.party || x.start < l.start);
      kept.push(l);
    }
    return kept.filter((x) => x.text).sort((a, b) => a.start - b.start);
  }

  // ---- formatting ----

  /** m:ss (mm:ss with `pad`), h:mm:ss past an hour; with `tenths`, m:ss.s. */
  function clock(seconds, { tenths = false, pad = false } = {}) {
    let t = Math.max(0, Number(seconds) || 0);
    if (tenths) t = Math.floor(t * 10) / 10;
    const two = (n) => String(n).padStart(2, "0");
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    const s = t % 60;
    const ss = tenths ? s.toFixed(1).padStart(4, "0") : two(Math.floor(s));
    return h ? `${h}:${two(m)}:${ss}` : `${pad ? two(m) : m}:${ss}`;
  }

  /** A level in dBFS held to the meters' range; -60 when there is none. */
  function db(dbfs) {
    return num(dbfs) ? Math.min(0, Math.max(FLOOR_DB, dbfs)) : FLOOR_DB;
  }

  /** "60%" for 0.6; a dash when unknown. */
  function percent(fraction) {
    return num(fraction) ? `${Math.round(fraction * 100)}%` : "–";
  }

  /** Words per minute as shown beside a meter; a dash until the party has spoken. */
  function wpm(value) {
    return num(value) ? String(Math.round(value)) : "–";
  }

  // ---- drawing the parts every page has ----

  /** Sets a .meter element (with its one <b> bar) to a level. */
  function setMeter(el, dbfs) {
    const level = db(dbfs);
    el.firstElementChild.style.width = `${((level - FLOOR_DB) / -FLOOR_DB) * 100}%`;
    el.setAttribute("aria-valuenow", String(Math.round(level)));
  }

  const drawn = new WeakMap();  // element -> the lines it shows, so unchanged lines are not redrawn

  /** Shows transcript lines in a .lines element: one <p class="party [interim]"> each. */
  function showLines(el, list) {
    const key = list.map((l) => `${l.party}|${l.start}|${l.t}|${l.final}|${l.text}`).join("\n");
    if (drawn.get(el) === key) return;
    drawn.set(el, key);
    el.replaceChildren(...list.map((l) => {
      const p = document.createElement("p");
      p.className = l.final ? l.party : `${l.party} interim`;
      p.textContent = l.text;
      return p;
    }));
  }

  /** A short soft tone on `audio` (an AudioContext made on a click, so the browser lets it play). */
  function tone(audio, { hz, wave = "sine", peak = 0.08, attack = 0.03, seconds = 0.7 }) {
    const t = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = wave;
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(peak, t + attack);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + seconds);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + seconds + 0.05);
  }

  globalThis.Calmline = Object.freeze({
    PARTIES, FLOOR_DB, state, reduce, cueAge, currentCue, currentNote, lines, share, finalLines,
    clock, db, percent, wpm, setMeter, showLines, tone,
  });
})();
