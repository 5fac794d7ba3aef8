"use strict";
/* calmline floor: one WebSocket to /floor/ws (the session cookie authenticates it). The hub sends a `floor`
   snapshot, then `tile`, `alert`, `call_end` and `remove` messages; after a `watch` it also streams that call's
   events, which the live view shows as the agent's overlay would. A WebSocket message may hold several JSON
   objects, one per line. See docs/protocol.md, "The hub". The live view's state comes from Calmline.reduce
   (calmline.js), as the overlay's does.
   Alerts: each can be acknowledged (for this supervisor, kept by the server, so a reload keeps it); one whose
   reason cleared shows as resolved; one of an ended call opens its replay. A beep and a desktop notification
   per new alert are each off until switched on here (remembered in this browser). The live view sends the
   agent a short text or a coaching card (`say`); the server checks, caps and rate-limits it. */

const PARTIES = Calmline.PARTIES;
const CUE_S = 8;                 // how long a cue stays up in the live view (as the overlay's default)
const TRANSCRIPT_LINES = 12;
const SORT_EVERY_MS = 1000;      // tiles move at most once a second, so the floor stays readable
const MAX_ALERTS = 50;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 4000;
const STATUS_ORDER = { live: 0, lost: 1, ended: 2 };

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), summary: $("summary"), user: $("user"), tiles: $("tiles"), empty: $("empty"),
  alerts: $("alerts"), live: $("live"), liveAgent: $("live-agent"), liveStatus: $("live-status"),
  liveDur: $("live-dur"), liveCue: $("live-cue"), liveCueBox: $("live-cue-box"), liveShare: $("live-share"),
  liveInt: $("live-int"), liveCues: $("live-cues"), liveReasons: $("live-reasons"), liveTranscript: $("live-transcript"),
  sound: $("sound"), notify: $("notify"), ackAll: $("ack-all"), say: $("say"), sayText: $("say-text"),
  sayCards: $("say-cards"), sayStatus: $("say-status"), saySent: $("say-sent"),
  meter: {}, talk: {}, pace: {},
};
for (const p of PARTIES) {
  ui.meter[p] = $(`live-meter-${p}`);
  ui.talk[p] = $(`live-talk-${p}`);
  ui.pace[p] = $(`live-pace-${p}`);
}

const calls = new Map();   // call_id -> { tile, el, receivedAt }
let socket = null;
let watched = null;        // the live view's call id
let live = null;           // the live view's overlay state (Calmline.state)
let liveCue = null;        // the cue the live view shows
let lastSort = 0;
let orderDirty = true;
const alerts = new Map();  // alert id -> { alert, el }

// ---- messages from the hub ----

const handlers = {
  floor(msg) {
    for (const [id, c] of calls) if (!msg.calls.some((t) => t.call_id === id)) removeTile(id);
    for (const tile of msg.calls) setTile(tile);
    ui.alerts.replaceChildren();
    alerts.clear();
    for (const alert of msg.alerts) addAlert(alert, false);
    if (msg.cards) setCards(msg.cards);
    if (msg.user) ui.user.textContent = msg.user;
    orderDirty = true;
    lastSort = 0;
    if (watched) send({ type: "watch", call_id: watched });  // after a reconnect
  },
  tile(msg) {  // a tile holds only the fields that changed since the last one of that call
    const c = calls.get(msg.call.call_id);
    setTile(c ? { ...c.tile, ...msg.call } : msg.call);
  },
  alert(msg) { addAlert(msg, true); },
  acked(msg) {
    for (const id of msg.ids || []) setAlert(id, { acked: true });
  },
  resolved(msg) {
    for (const id of msg.ids || []) setAlert(id, { resolved: true });
  },
  said(msg) {
    if (msg.call_id !== watched) return;
    ui.sayText.value = "";
    sayStatus(msg.viewers || msg.monitor ? "Sent to the agent's overlay."
      : "Sent; the agent's overlay is not open on this server.", "ok");
  },
  call_end(msg) {
    const c = calls.get(msg.call_id);
    if (c) {
      c.tile.status = "ended";
      renderTile(c);
      fetchScore(msg.call_id);
    }
    for (const a of alerts.values()) if (a.alert.call_id === msg.call_id) renderAlert(a);
    if (msg.call_id === watched) overlayEvent({ type: "call_end" });
  },
  remove(msg) {
    removeTile(msg.call_id);
    for (const a of alerts.values()) if (a.alert.call_id === msg.call_id) renderAlert(a);
    if (msg.call_id === watched) closeLive();
  },
  watching(msg) {
    if (msg.call_id !== watched) return;
    resetLive();
    for (const ev of msg.events) overlayEvent(ev);
  },
  event(msg) {
    if (msg.call_id !== watched) return;
    overlayEvent(msg.event);
    const c = calls.get(msg.call_id);  // tiles carry no levels: the watched call's tile meters follow its events
    if (c && msg.event && msg.event.type === "levels") {
      c.tile.levels = msg.event.levels;
      c.dirty = true;
    }
  },
  error(msg) {
    if (msg.about === "say") sayStatus(msg.reason, "error");
    else if (msg.call_id && msg.call_id === watched) closeLive();
  },
};

function onMessage(text) {
  for (const line of text.split("\n")) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      continue;
    }
    if (msg && typeof msg === "object" && Object.hasOwn(handlers, msg.type)) handlers[msg.type](msg);
  }
}

// ---- tiles ----

function setTile(tile) {
  let c = calls.get(tile.call_id);
  if (!c) {
    c = { el: makeTile(tile.call_id) };
    calls.set(tile.call_id, c);
    ui.tiles.append(c.el);
    orderDirty = true;
    lastSort = 0;
  } else if (orderKey(c.tile) !== orderKey(tile)) {
    orderDirty = true;
  }
  c.tile = tile;
  c.receivedAt = performance.now();
  c.dirty = true;
  if (tile.status === "ended") fetchScore(tile.call_id);  // a call that ended before this page opened
  if (tile.call_id === watched) renderLiveStats(tile);
}

function removeTile(id) {
  const c = calls.get(id);
  if (c) c.el.remove();
  calls.delete(id);
}

function makeTile(id) {
  const el = document.createElement("article");
  el.className = "tile";
  el.dataset.callId = id;
  el.tabIndex = 0;
  el.setAttribute("role", "button");
  el.innerHTML = `
    <header><span class="agent"></span><span class="badge"></span><span class="dur"></span></header>
    <div class="meters">
      <div class="row" data-party="agent"><span class="who"><i class="dot"></i>Agent</span><div class="meter"><b></b></div></div>
      <div class="row" data-party="customer"><span class="who"><i class="dot"></i>Customer</span><div class="meter"><b></b></div></div>
    </div>
    <dl class="stats">
      <div><dt>Talk share</dt><dd class="share"></dd></div>
      <div><dt>Interrupts</dt><dd class="int"></dd></div>
      <div><dt>Cues 1 min</dt><dd class="cues"></dd></div>
    </dl>
    <div class="mood" hidden title="The customer's sentiment trend, from upset (left) to pleased (right)">
      <span class="who">Mood</span><div class="mood-scale"><b></b></div><span class="mood-value"></span>
    </div>
    <p class="cue"></p>
    <p class="reasons"></p>`;
  el.addEventListener("click", () => openLive(id));
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openLive(id);
    }
  });
  return el;
}

async function fetchScore(id, tries = 10) {
  // An ended call's 0-100 scorecard score, from the call list once the server has closed its recording
  // (a call recorded elsewhere, such as on a desktop monitor, has none here: the tile just says "ended").
  const c = calls.get(id);
  if (!c || c.scoreAsked) return;
  c.scoreAsked = true;
  for (let i = 0; i < tries && calls.get(id) === c; i++) {
    try {
      const res = await fetch(`/calls?agent=${encodeURIComponent(c.tile.agent)}`, { cache: "no-store" });
      const row = res.ok ? (await res.json()).find((r) => r.id === id) : null;
      if (row && row.status !== "recording" && row.score && Number.isFinite(row.score.score)) {
        c.score = row.score.score;
        renderTile(c);
        return;
      }
    } catch {
      // the server is away: try again
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function renderTile(c) {
  const t = c.tile;
  const el = c.el;
  const q = (sel) => el.querySelector(sel);
  el.dataset.attention = String(Boolean(t.needs_attention));
  el.dataset.status = t.status;
  q(".agent").textContent = t.agent;
  q(".badge").textContent = t.status === "lost" ? "connection lost"
    : t.status === "ended" && Number.isFinite(c.score) ? `ended · score ${c.score}` : t.status;
  q(".dur").textContent = duration(c);
  for (const p of PARTIES) {
    const row = q(`.row[data-party="${p}"]`);
    const level = t.status === "live" && t.levels ? t.levels[p] : null;
    Calmline.setMeter(row.querySelector(".meter"), level);
    row.classList.toggle("unmetered", !t.levels);  // levels come only for the watched call: no empty bars
    row.querySelector(".dot").classList.toggle("on", t.status === "live" && Boolean(t.talking && t.talking[p]));
  }
  q(".share").textContent = Calmline.percent(t.share);
  q(".int").textContent = t.interruptions ? String(t.interruptions.agent + t.interruptions.customer) : "0";
  q(".cues").textContent = String(t.cues_1m || 0);
  const mood = q(".mood");
  mood.hidden = typeof t.sentiment !== "number";
  if (!mood.hidden) {  // a bar from the middle: left when upset, right when pleased
    const s = Math.max(-1, Math.min(1, t.sentiment));
    const bar = mood.querySelector("b");
    bar.style.left = `${50 + Math.min(0, s) * 50}%`;
    bar.style.width = `${Math.abs(s) * 50}%`;
    mood.dataset.sign = s < 0 ? "upset" : "pleased";
    q(".mood-value").textContent = `${s > 0 ? "+" : ""}${s.toFixed(1)}`;
    // The trend: this tile's last readings (kept here as they come); the label's arrow says which way it goes.
    if (c.moodSeen !== t.sentiment) c.moods = [...(c.moods || []), s].slice(-8);
    c.moodSeen = t.sentiment;
    const change = s - c.moods[Math.max(0, c.moods.length - 4)];
    mood.dataset.direction = change <= -0.1 ? "worse" : change >= 0.1 ? "better" : "steady";
    q(".mood .who").textContent = `Mood${change <= -0.1 ? " ↓" : change >= 0.1 ? " ↑" : ""}`;
    mood.title = `The customer's sentiment trend, from upset (left) to pleased (right); last readings: ${
      c.moods.map((v) => v.toFixed(1)).join(", ")}`;
  }
  q(".cue").textContent = t.cue ? t.cue.text : "";
  q(".reasons").textContent = (t.reasons || []).join(" · ");
  c.dirty = false;
}

function orderKey(t) {
  return `${t.needs_attention}|${Math.round(t.attention)}|${t.status}`;
}

function compare(a, b) {
  const x = a.tile;
  const y = b.tile;
  return (Number(y.needs_attention) - Number(x.needs_attention)) || (y.attention - x.attention)
    || ((STATUS_ORDER[x.status] ?? 3) - (STATUS_ORDER[y.status] ?? 3)) || (x.started_at - y.started_at)
    || (x.call_id < y.call_id ? -1 : 1);
}

function sortTiles() {
  const sorted = [...calls.values()].sort(compare);
  const current = [...ui.tiles.children];
  if (sorted.some((c, i) => current[i] !== c.el)) ui.tiles.append(...sorted.map((c) => c.el));
  // The call that needs a supervisor most stands out: the first flagged live call after sorting.
  const top = sorted.find((c) => c.tile.needs_attention && c.tile.status !== "ended");
  for (const c of sorted) c.el.dataset.top = String(c === top);
  orderDirty = false;
  lastSort = performance.now();
}

function duration(c) {
  const t = c.tile;
  const running = t.status === "live" ? (performance.now() - c.receivedAt) / 1000 : 0;
  return Calmline.clock(t.t + running, { pad: true });
}

function renderSummary() {
  let n = 0;
  let attention = 0;
  for (const c of calls.values()) {
    if (c.tile.status === "ended") continue;
    n += 1;
    if (c.tile.needs_attention) attention += 1;
  }
  const needs = attention ? ` · ${attention} need${attention === 1 ? "s" : ""} attention` : "";
  ui.summary.textContent = `${n} live call${n === 1 ? "" : "s"}${needs}`;
  ui.empty.hidden = calls.size > 0;
}

function frame() {
  for (const c of calls.values()) if (c.dirty) renderTile(c);
  if (orderDirty && performance.now() - lastSort >= SORT_EVERY_MS) sortTiles();
  renderSummary();
  requestAnimationFrame(frame);
}

function tick() {
  for (const c of calls.values()) c.el.querySelector(".dur").textContent = duration(c);
  if (watched && calls.has(watched)) ui.liveDur.textContent = duration(calls.get(watched));
  if (live) renderCue();
}

// ---- alerts ----

function addAlert(alert, fresh) {
  const li = document.createElement("li");
  li.className = "alert";
  li.dataset.callId = alert.call_id;
  li.dataset.kind = alert.kind;
  li.dataset.id = String(alert.id);
  const when = document.createElement("time");
  when.textContent = new Date(alert.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const who = document.createElement("b");
  who.textContent = alert.agent;
  const ack = document.createElement("button");
  ack.type = "button";
  ack.className = "ack";
  ack.textContent = "Acknowledge";
  ack.title = "Mark as seen (for you only)";
  ack.addEventListener("click", (e) => {
    e.stopPropagation();
    send({ type: "ack", ids: [alert.id] });
  });
  const what = document.createElement("span");
  what.textContent = alert.text;
  const replay = document.createElement("a");
  replay.className = "replay";
  replay.href = `/calls/${encodeURIComponent(alert.call_id)}/`;
  replay.target = "_blank";
  replay.rel = "noopener";
  replay.textContent = "Replay";
  replay.addEventListener("click", (e) => e.stopPropagation());
  li.append(when, who, ack, what, replay);
  li.addEventListener("click", () => openAlert(alert.call_id));
  const a = { alert, el: li };
  alerts.set(alert.id, a);
  renderAlert(a);
  ui.alerts.prepend(li);
  while (ui.alerts.children.length > MAX_ALERTS) {
    alerts.delete(Number(ui.alerts.lastElementChild.dataset.id));
    ui.alerts.lastElementChild.remove();
  }
  if (fresh) announce(alert);
}

function setAlert(id, fields) {
  const a = alerts.get(id);
  if (!a) return;
  Object.assign(a.alert, fields);
  renderAlert(a);
}

function callEnded(id) {
  const c = calls.get(id);
  return !c || c.tile.status === "ended";
}

function renderAlert(a) {
  const ended = callEnded(a.alert.call_id);
  a.el.dataset.acked = String(Boolean(a.alert.acked));
  a.el.dataset.resolved = String(Boolean(a.alert.resolved));
  a.el.dataset.ended = String(ended);
  a.el.title = ended ? "Open the call's replay" : "Open the call's live view";
}

function openAlert(id) {
  if (!callEnded(id)) openLive(id);
  else window.open(`/calls/${encodeURIComponent(id)}/`, "_blank", "noopener");
}

ui.ackAll.addEventListener("click", () => send({ type: "ack", all: true }));

// ---- a beep and a desktop notification per new alert: each off until switched on ----

const prefs = {
  get(key) {
    try { return localStorage.getItem(`calmline.floor.${key}`) === "on"; } catch { return false; }
  },
  set(key, on) {
    try { localStorage.setItem(`calmline.floor.${key}`, on ? "on" : "off"); } catch { /* private mode */ }
  },
};
let audio = null;

function setToggle(button, on, label) {
  button.setAttribute("aria-pressed", String(on));
  button.textContent = `${label} ${on ? "on" : "off"}`;
}

ui.sound.addEventListener("click", () => {
  const on = ui.sound.getAttribute("aria-pressed") !== "true";
  setToggle(ui.sound, on, "Sound");
  prefs.set("sound", on);
  if (on) {
    audio = audio || new AudioContext();  // made on a click, so the browser lets it play
    audio.resume();
    beep();
  }
});

ui.notify.addEventListener("click", async () => {
  let on = ui.notify.getAttribute("aria-pressed") !== "true";
  if (on && "Notification" in window && Notification.permission !== "granted") {
    on = (await Notification.requestPermission()) === "granted";  // asked on this click only
  }
  if (on && !("Notification" in window)) on = false;
  setToggle(ui.notify, on, "Desktop alerts");
  prefs.set("notify", on);
});

setToggle(ui.sound, false, "Sound");  // a page may not play sound before a click: the toggle starts off
setToggle(ui.notify, prefs.get("notify") && "Notification" in window && Notification.permission === "granted",
  "Desktop alerts");

function beep() {
  if (!audio || ui.sound.getAttribute("aria-pressed") !== "true") return;
  Calmline.tone(audio, { hz: 880, wave: "triangle", peak: 0.1, attack: 0.02, seconds: 0.35 });
}

function announce(alert) {
  beep();
  if (ui.notify.getAttribute("aria-pressed") !== "true" || !("Notification" in window)
      || Notification.permission !== "granted") return;
  const note = new Notification(`${alert.agent}: ${alert.text}`, { tag: `calmline-${alert.id}`, body: "calmline floor" });
  note.onclick = () => {
    window.focus();
    openAlert(alert.call_id);
    note.close();
  };
}

// ---- a word to the agent, from the live view ----

function setCards(cards) {
  ui.sayCards.replaceChildren();
  for (const [key, text] of Object.entries(cards)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "card";
    button.dataset.card = key;
    button.textContent = text;
    button.addEventListener("click", () => say({ card: key }));
    ui.sayCards.append(button);
  }
}

function say(fields) {
  if (!watched) return;
  sayStatus("Sending…", "");
  send({ type: "say", call_id: watched, ...fields });
}

function sayStatus(text, state) {
  ui.sayStatus.textContent = text;
  ui.sayStatus.dataset.state = state;
}

function addSent(note) {
  const li = document.createElement("li");
  li.className = "note-sent";
  li.dataset.id = String(note.id);
  const when = document.createElement("time");
  when.textContent = Calmline.clock(note.t || 0);
  const what = document.createElement("span");
  what.textContent = note.text;
  li.append(when, what);
  li.title = `from ${note.sender}`;
  ui.saySent.prepend(li);
}

ui.say.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.sayText.value.trim();
  if (text) say({ text });
});

// ---- the live view: the agent's overlay for one call ----

function openLive(id) {
  watched = id;
  resetLive();
  const c = calls.get(id);
  ui.liveAgent.textContent = c ? c.tile.agent : id;
  if (c) renderLiveStats(c.tile);
  ui.live.hidden = false;
  document.body.classList.add("watching");
  for (const other of calls.values()) other.el.classList.toggle("watched", other.el.dataset.callId === id);
  send({ type: "watch", call_id: id });
}

function closeLive() {
  if (watched) send({ type: "watch", call_id: null });
  watched = null;
  live = null;
  ui.live.hidden = true;
  document.body.classList.remove("watching");
  for (const c of calls.values()) c.el.classList.remove("watched");
}

function resetLive() {
  live = Calmline.state({ lines: TRANSCRIPT_LINES });
  liveCue = null;
  ui.saySent.replaceChildren();
  sayStatus("", "");
  ui.liveCueBox.dataset.idle = "No cue";
  renderLive();
}

function renderLiveStats(t) {
  ui.liveStatus.textContent = t.status === "lost" ? "connection lost" : t.status;
  ui.liveStatus.dataset.status = t.status;
  ui.liveShare.textContent = Calmline.percent(t.share);
  ui.liveInt.textContent = t.interruptions ? `${t.interruptions.agent} by agent, ${t.interruptions.customer} by customer` : "–";
  ui.liveCues.textContent = String(t.cues_1m || 0);
  ui.liveReasons.textContent = (t.reasons || []).join(" · ");
  ui.live.dataset.attention = String(Boolean(t.needs_attention));
  ui.say.hidden = t.status === "ended";  // a word reaches a live call only
}

function overlayEvent(ev) {
  if (!live || !ev || typeof ev !== "object") return;
  Calmline.reduce(live, ev, performance.now() / 1000);
  if (ev.type === "note") addSent(ev);
  if (ev.type === "call_start") ui.liveCueBox.dataset.idle = "No cue";
  else if (ev.type === "call_end") ui.liveCueBox.dataset.idle = "Call ended";
  renderLive();
}

function renderLive() {
  for (const p of PARTIES) {
    Calmline.setMeter(ui.meter[p], live.levels[p]);
    ui.talk[p].classList.toggle("on", live.talking[p]);
    ui.pace[p].textContent = Calmline.wpm(live.wpm[p]);
  }
  Calmline.showLines(ui.liveTranscript, Calmline.lines(live));
  renderCue();
}

function renderCue() {
  const best = Calmline.currentCue(live, CUE_S, performance.now() / 1000);
  if (best === liveCue) return;
  liveCue = best;
  ui.liveCue.textContent = best ? best.text : "";
  ui.liveCue.dataset.kind = best ? best.kind : "";
  ui.liveCue.className = best ? "show" : "";
}

// ---- connection: reconnects by itself; back to the login page when the session is gone ----

let backoff = FIRST_BACKOFF_MS;

function send(msg) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
}

function setStatus(connected) {
  ui.status.dataset.state = connected ? "connected" : "disconnected";
  ui.status.textContent = connected ? "live" : "disconnected – reconnecting…";
  document.body.classList.toggle("offline", !connected);
}

async function stillLoggedIn() {
  try {
    const response = await fetch("/session", { cache: "no-store" });
    return response.status !== 401;
  } catch {
    return true;  // the hub is unreachable: keep trying
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/floor/ws`);
  socket.onopen = () => {
    backoff = FIRST_BACKOFF_MS;
    setStatus(true);
  };
  socket.onmessage = (message) => onMessage(message.data);
  socket.onclose = async () => {
    setStatus(false);
    if (!(await stillLoggedIn())) {
      location.href = "/login";
      return;
    }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  };
}

$("live-close").addEventListener("click", closeLive);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && watched) closeLive();
});

requestAnimationFrame(frame);
setInterval(tick, 250);
connect();
