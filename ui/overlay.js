"use strict";
/* calmline overlay: one WebSocket to /ws. Each event goes through Calmline.reduce (calmline.js) into the
   call's state, which this page draws; it adds the call label, notices, the chime and the pop-out.
   Events are described in docs/protocol.md; unknown types and keys are ignored. A cue stays while the
   monitor says its behaviour lasts (until its cue_end); talk share, pace and the call clock are the
   server's (stats), so a page opened mid-call is right at once. When the stream has been gone for more
   than STALE_MS, everything greys out and the page says "Not live". */

const PARTIES = Calmline.PARTIES;
const params = new URLSearchParams(location.search);
const CUE_S = Number(params.get("cue_s")) || 8;  // how long a cue stays up (?cue_s= to change it)
const FADE_S = Math.min(1, CUE_S / 4);            // the last part of it, fading out
const NOTE_S = 2.5;                                // a cue_end's positive note shows this long
const TRANSCRIPT_LINES = 3;
const INTERIM = params.get("interim") === "1";      // finals only, unless ?interim=1
const STALE_MS = 2000;                            // no stream for longer than this: "Not live"
const PACE_MAX = 250;                             // the pace scale's right end, words per minute
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 2000;
const ENDED = 4000;  // close code: the server has ended for good (monitor/web/overlay.py ENDED)

// Elements are looked up once: the root may move into a Picture-in-Picture window's document.
const $ = (id) => document.getElementById(id);
const ui = {
  root: $("root"), status: $("status"), call: $("call"), cueBox: $("cue-box"), cue: $("cue"), chime: $("chime"),
  popout: $("popout"), note: $("popped-note"), share: $("share"), transcript: $("transcript"), notice: $("notice"),
  clock: $("clock"), notLive: $("not-live"), paceScale: $("pace-scale"), paceYou: $("pace-you"), paceThem: $("pace-them"),
  meter: {}, talk: {}, pace: {},
};
for (const p of PARTIES) {
  ui.meter[p] = $(`meter-${p}`);
  ui.talk[p] = $(`talk-${p}`);
  ui.pace[p] = $(`pace-${p}`);
}

const state = Calmline.state({ lines: TRANSCRIPT_LINES });
let shown = null;  // the cue on screen
let noticeTimer = null;

function showNotice(text, kind, clearAfterMs = 0) {
  clearTimeout(noticeTimer);
  ui.notice.textContent = text;
  ui.notice.dataset.state = kind;
  ui.notice.hidden = false;
  if (clearAfterMs) noticeTimer = setTimeout(() => { ui.notice.hidden = true; ui.notice.dataset.state = ""; }, clearAfterMs);
}

// ---- events: the shared reducer keeps the state; these add what only the overlay shows ----

const extras = {
  call_start() {
    ui.call.textContent = "Live call";
    ui.cueBox.dataset.idle = "";
    ui.root.classList.remove("idle", "ended");
  },
  call_end() {
    ui.call.textContent = "";
    ui.cueBox.dataset.idle = "Call ended";
    ui.root.classList.add("ended");
  },
  call_summary(ev) {
    // The server's agent overlay sends this after call_end: what the call came to, until the next call starts.
    const parts = ["Call ended"];
    if (Number.isFinite(ev.cues)) parts.push(`${ev.cues} cue${ev.cues === 1 ? "" : "s"}`);
    const by = ev.interruptions && ev.interruptions.agent;
    if (Number.isFinite(by)) parts.push(`${by} interruption${by === 1 ? "" : "s"} by you`);
    if (Number.isFinite(ev.share)) parts.push(`you spoke ${Calmline.percent(ev.share)}`);
    if (ev.score && Number.isFinite(ev.score.score)) parts.push(`score ${ev.score.score}`);  // of 100
    else if (ev.score && Number.isFinite(ev.score.met)) parts.push(`score ${ev.score.met}/${ev.score.total}`);
    ui.cueBox.dataset.idle = parts.join(" · ");
  },
  device(ev) {
    // A headset or line that drops is said plainly; the call analysis goes on meanwhile.
    const who = ev.party === "agent" ? "Headset" : "Customer line";
    if (ev.state === "lost") showNotice(`${who} lost – reconnecting…`, "lost");
    else if (ev.state === "ok" && ui.notice.dataset.state === "lost") showNotice(`${who} back`, "ok", 3000);
    else if (ev.state === "overflow") showNotice("Audio dropped for a moment", "overflow", 3000);
  },
  store() {
    showNotice("Recording stopped – cues go on", "store");
  },
};

function handle(ev) {
  if (!ev || typeof ev !== "object") return;
  heardAt = performance.now();
  Calmline.reduce(state, ev, performance.now() / 1000);
  if (Object.hasOwn(extras, ev.type)) extras[ev.type](ev);
  if (typeof CalmlineNotes !== "undefined") CalmlineNotes.handle(ev);  // supervisors' notes, self-view (overlay_notes.js)
  if (typeof CalmlineSentiment !== "undefined") CalmlineSentiment.handle(ev);  // the customer's trend
  render();
}

// ---- rendering ----

function render() {
  for (const p of PARTIES) {
    Calmline.setMeter(ui.meter[p], state.levels[p]);
    ui.talk[p].classList.toggle("on", state.talking[p]);
    ui.pace[p].textContent = Calmline.wpm(state.wpm[p]);
  }
  ui.share.textContent = Calmline.percent(Calmline.share(state));
  renderPace();
  ui.clock.textContent = state.started && !state.ended ? Calmline.clock(state.now) : "";
  showWholeLines(ui.transcript, Calmline.lines(state, { interim: INTERIM }));
  renderCue();  // a newer audio time may retire a cue
}

function renderPace() {
  // The agent's pace as a bar; the customer's as the mark it is measured against.
  const you = state.wpm.agent;
  const them = state.wpm.customer;
  const at = (wpm) => `${(Math.min(Math.max(wpm, 0), PACE_MAX) / PACE_MAX) * 100}%`;
  ui.paceYou.style.width = Number.isFinite(you) ? at(you) : "0%";
  ui.paceThem.hidden = !Number.isFinite(them);
  if (Number.isFinite(them)) ui.paceThem.style.left = at(them);
  ui.paceScale.setAttribute("aria-valuenow", Number.isFinite(you) ? String(Math.round(you)) : "0");
  ui.paceScale.setAttribute("aria-valuetext", `you ${Calmline.wpm(you)}, customer ${Calmline.wpm(them)} wpm`);
}

function showWholeLines(el, list) {
  // Only whole lines: the oldest go until the newest fit (a line is never cut off at the top).
  Calmline.showLines(el, list);
  while (el.children.length > 1 && el.scrollHeight > el.clientHeight + 1) el.firstElementChild.remove();
}

function renderCue() {
  const wall = performance.now() / 1000;
  const best = Calmline.currentCue(state, CUE_S, wall);
  const note = best ? null : Calmline.currentNote(state, NOTE_S, wall);  // a pushed-aside cue comes first
  const up = best || note;
  const el = ui.cue;
  if (!up) {
    if (shown) {
      el.textContent = "";
      el.dataset.kind = "";
      el.className = "";
      shown = null;
    }
    return;
  }
  if (shown !== up) {
    el.textContent = up.text;
    el.dataset.kind = best ? best.kind : "";
    el.className = best ? "show" : "show praise";
    if (best && !best.chimed) chime();
    up.chimed = true;
    shown = up;
  }
  el.classList.toggle("fading", Boolean(best) && Calmline.cueAge(state, best, wall) > CUE_S - FADE_S);
}

// ---- liveness: "Not live" once the stream has been gone (closed, or silent mid-call) for STALE_MS ----

let heardAt = performance.now();  // the last message, or the stream opening
let goneAt = null;                // when the stream closed (null while open)

function checkLive() {
  const now = performance.now();
  const closed = goneAt !== null && now - goneAt > STALE_MS;
  const silent = goneAt === null && state.started && !state.ended && now - heardAt > STALE_MS;
  const stale = closed || silent;
  if (stale !== ui.root.classList.contains("stale")) {
    ui.root.classList.toggle("stale", stale);
    ui.notLive.hidden = !stale;
  }
}

function resetView() {
  // A (re)opened stream starts with the server's snapshot: nothing from before may linger.
  Object.assign(state, Calmline.state({ lines: TRANSCRIPT_LINES }));
  ui.call.textContent = "";
  ui.cueBox.dataset.idle = "Waiting for a call";
  ui.root.classList.remove("ended");
  ui.root.classList.add("idle");
  render();
}

// ---- connection: reconnects by itself, backing off up to MAX_BACKOFF_MS ----

let backoff = FIRST_BACKOFF_MS;

function setStatus(connected) {
  ui.status.dataset.state = connected ? "connected" : "disconnected";
  ui.status.textContent = connected ? "connected" : "disconnected – reconnecting…";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // On the server a supervisor may open /?agent=NAME: the stream of that agent's calls.
  const agent = params.get("agent");
  const query = agent ? `?agent=${encodeURIComponent(agent)}` : "";
  const socket = new WebSocket(`${scheme}//${location.host}/ws${query}`);
  socket.onopen = () => {
    backoff = FIRST_BACKOFF_MS;
    heardAt = performance.now();
    goneAt = null;
    resetView();
    setStatus(true);
    checkLive();
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
  socket.onclose = (event) => {
    if (goneAt === null) goneAt = performance.now();
    if (event.code === ENDED) {  // the server has ended for good (the demo is over): say why, stop trying
      goneAt = null;  // not "Not live" over the call's summary: the notice says it has ended
      ui.status.dataset.state = "ended";
      ui.status.textContent = "ended";
      showNotice(event.reason || "calmline has ended.", "ended");
      return;
    }
    setStatus(false);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    signedOut();
  };
}

// On the server the stream needs a session: once it has ended (logout, expiry), back to the login page.
// The loopback overlay of live and demo has no /session at all (404), and stays.
function signedOut() {
  fetch("/session", { credentials: "same-origin" })
    .then((response) => { if (response.status === 401) location.assign("/login"); })
    .catch(() => {});
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
  Calmline.tone(audio, { hz: 660 });
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
    for (const sheet of document.querySelectorAll('link[rel="stylesheet"]')) {  // common.css and overlay.css
      const css = pip.document.createElement("link");
      css.rel = "stylesheet";
      css.href = sheet.href;
      pip.document.head.append(css);
    }
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

render();
setInterval(() => {
  renderCue();
  checkLive();
}, 200);
connect();
