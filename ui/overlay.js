"use strict";
/* calmline overlay: one WebSocket to /ws; each event type updates one part of the page.
   Events are described in docs/protocol.md; unknown types and keys are ignored. */

// Most important first, as monitor/cues.py PRIORITY: the overlay shows one cue at a time.
const PRIORITY = ["wait_for_pause", "speak_softly", "acknowledge", "own_the_problem", "slow_down",
                  "let_them_talk", "pause_first", "dead_air"];
const PARTIES = ["agent", "customer"];
const params = new URLSearchParams(location.search);
const CUE_S = Number(params.get("cue_s")) || 8;  // how long a cue stays up (?cue_s= to change it)
const FADE_S = Math.min(1, CUE_S / 4);            // the last part of it, fading out
const TRANSCRIPT_LINES = 3;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 2000;

// Elements are looked up once: the root may move into a Picture-in-Picture window's document.
const $ = (id) => document.getElementById(id);
const ui = {
  root: $("root"), status: $("status"), call: $("call"), cueBox: $("cue-box"), cue: $("cue"), chime: $("chime"),
  popout: $("popout"), note: $("popped-note"), share: $("share"), transcript: $("transcript"), notice: $("notice"),
  meter: {}, talk: {}, pace: {},
};
for (const p of PARTIES) {
  ui.meter[p] = $(`meter-${p}`);
  ui.talk[p] = $(`talk-${p}`);
  ui.pace[p] = $(`pace-${p}`);
}

let state;
let noticeTimer = null;

function showNotice(text, kind, clearAfterMs = 0) {
  clearTimeout(noticeTimer);
  ui.notice.textContent = text;
  ui.notice.dataset.state = kind;
  ui.notice.hidden = false;
  if (clearAfterMs) noticeTimer = setTimeout(() => { ui.notice.hidden = true; ui.notice.dataset.state = ""; }, clearAfterMs);
}

// ---- events ----

const handlers = {
  call_start() {
    reset();
    ui.call.textContent = "Live call";
    ui.cueBox.dataset.idle = "";
    ui.root.classList.remove("idle", "ended");
  },
  call_end() {
    state.cues.clear();
    renderCue();
    for (const p of PARTIES) setLevel(p, null, false);
    ui.call.textContent = "";
    ui.cueBox.dataset.idle = "Call ended";
    ui.root.classList.add("ended");
  },
  levels(ev) {
    for (const p of PARTIES) {
      if (ev.levels && p in ev.levels) setLevel(p, ev.levels[p], ev.talking && ev.talking[p]);
    }
  },
  cue(ev) {
    // A newer cue of the same kind replaces the older one and restarts its time.
    state.cues.set(ev.kind, { kind: ev.kind, text: ev.text || ev.kind, t: ev.t, at: performance.now() });
    renderCue();
  },
  device(ev) {
    // A headset or line that drops is said plainly; the call analysis goes on meanwhile.
    const who = ev.party === "agent" ? "Headset" : "Customer line";
    if (ev.state === "lost") showNotice(`${who} lost – reconnecting…`, "lost");
    else if (ev.state === "ok" && ui.notice.dataset.state === "lost") showNotice(`${who} back`, "ok", 3000);
    else if (ev.state === "overflow") showNotice("Audio dropped for a moment", "overflow", 3000);
  },
  store(ev) {
    showNotice("Recording stopped – cues go on", "store");
  },
  pace(ev) {
    for (const p of PARTIES) {
      if (ev.wpm && p in ev.wpm) {
        const wpm = ev.wpm[p];
        ui.pace[p].textContent = typeof wpm === "number" ? String(Math.round(wpm)) : "–";
      }
    }
  },
  talk_end(ev) {
    if (!(ev.party in state.talk) || typeof ev.start !== "number") return;
    state.talk[ev.party] += Math.max(0, ev.t - ev.start);
    const total = state.talk.agent + state.talk.customer;
    if (total > 0) ui.share.textContent = `${Math.round((100 * state.talk.agent) / total)}%`;
  },
  transcript(ev) {
    // An interim line is replaced by the party's next interim or final; a final replaces the same
    // party's earlier finals that start at or after its start (a phrase heard again, longer).
    if (ev.final === false) {
      state.interim[ev.party] = ev;
    } else {
      delete state.interim[ev.party];
      const kept = state.finals.filter((f) => f.party !== ev.party || f.start < ev.start);
      state.finals = (ev.text && ev.text.trim() ? [...kept, ev] : kept).slice(-TRANSCRIPT_LINES);
    }
    renderTranscript();
  },
};

function handle(ev) {
  if (!ev || typeof ev !== "object" || !Object.hasOwn(handlers, ev.type)) return;
  handlers[ev.type](ev);
  if (typeof ev.t === "number") state.now = Math.max(state.now, ev.t);
  if (ev.type !== "cue") renderCue();  // a newer audio time may retire a cue
}

function reset() {
  state = { now: 0, cues: new Map(), shown: null, talk: { agent: 0, customer: 0 }, finals: [], interim: {} };
  for (const p of PARTIES) {
    setLevel(p, null, false);
    ui.pace[p].textContent = "–";
  }
  ui.share.textContent = "–";
  renderCue();
  renderTranscript();
}

// ---- rendering ----

function setLevel(party, dbfs, talking) {
  const db = typeof dbfs === "number" ? Math.min(0, Math.max(-60, dbfs)) : -60;
  ui.meter[party].firstElementChild.style.width = `${((db + 60) / 60) * 100}%`;
  ui.meter[party].setAttribute("aria-valuenow", String(Math.round(db)));
  ui.talk[party].classList.toggle("on", Boolean(talking));
}

function rank(kind) {
  const i = PRIORITY.indexOf(kind);
  return i < 0 ? PRIORITY.length : i;
}

function cueAge(cue) {
  // Seconds on screen, or in audio time when the call has moved on (e.g. an old cue in a reconnect snapshot).
  return Math.max((performance.now() - cue.at) / 1000, state.now - cue.t);
}

function renderCue() {
  let best = null;
  for (const [kind, cue] of state.cues) {
    if (cueAge(cue) >= CUE_S) state.cues.delete(kind);
    else if (!best || rank(kind) < rank(best.kind)) best = cue;
  }
  const el = ui.cue;
  if (!best) {
    if (state.shown) {
      el.textContent = "";
      el.dataset.kind = "";
      el.className = "";
      state.shown = null;
    }
    return;
  }
  if (state.shown !== best) {
    el.textContent = best.text;
    el.dataset.kind = best.kind;
    el.className = "show";
    if (!best.chimed) chime();
    best.chimed = true;
    state.shown = best;
  }
  el.classList.toggle("fading", cueAge(best) > CUE_S - FADE_S);
}

function renderTranscript() {
  const lines = [...state.finals, ...Object.values(state.interim)].slice(-TRANSCRIPT_LINES);
  ui.transcript.replaceChildren(...lines.map((ev) => {
    const line = document.createElement("p");
    line.className = `${ev.party}${ev.final === false ? " interim" : ""}`;
    line.textContent = ev.text || "";
    return line;
  }));
}

// ---- connection: reconnects by itself, backing off up to MAX_BACKOFF_MS ----

let backoff = FIRST_BACKOFF_MS;

function setStatus(connected) {
  ui.status.dataset.state = connected ? "connected" : "disconnected";
  ui.status.textContent = connected ? "connected" : "disconnected – reconnecting…";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws`);
  socket.onopen = () => {
    backoff = FIRST_BACKOFF_MS;
    setStatus(true);
  };
  socket.onmessage = (message) => {
    let ev;
    try {
      ev = JSON.parse(message.data);
    } catch {
      return;
    }
    handle(ev);
  };
  socket.onclose = () => {
    setStatus(false);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  };
}

// ---- optional chime: a soft sine, off by default ----

let audio = null;

ui.chime.addEventListener("click", () => {
  const on = ui.chime.getAttribute("aria-pressed") !== "true";
  ui.chime.setAttribute("aria-pressed", String(on));
  ui.chime.textContent = on ? "Chime on" : "Chime off";
  if (on) {
    audio = audio || new AudioContext();  // created on a click, so the browser lets it play
    audio.resume();
  }
});

function chime() {
  if (!audio || ui.chime.getAttribute("aria-pressed") !== "true") return;
  const t = audio.currentTime;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = "sine";
  osc.frequency.value = 660;
  gain.gain.setValueAtTime(0, t);
  gain.gain.linearRampToValueAtTime(0.08, t + 0.03);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.7);
  osc.connect(gain).connect(audio.destination);
  osc.start(t);
  osc.stop(t + 0.75);
}

// ---- pop out: an always-on-top window via Document Picture-in-Picture, where the browser has it ----

let pip = null;

if ("documentPictureInPicture" in window) {
  ui.popout.hidden = false;
  ui.popout.addEventListener("click", async () => {
    if (pip) {
      pip.close();
      return;
    }
    pip = await window.documentPictureInPicture.requestWindow({ width: 360, height: 240 });
    const css = pip.document.createElement("link");
    css.rel = "stylesheet";
    css.href = new URL("overlay.css", location.href).href;
    pip.document.head.append(css);
    pip.document.title = document.title;
    pip.document.body.append(ui.root);
    ui.popout.textContent = "Pop in";
    ui.note.hidden = false;
    pip.addEventListener("pagehide", () => {
      document.body.prepend(ui.root);
      ui.popout.textContent = "Pop out";
      ui.note.hidden = true;
      pip = null;
    });
  });
}

reset();
setInterval(renderCue, 200);
connect();
