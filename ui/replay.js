"use strict";
/* calmline replay: one recorded call, from the pieces beside the page at /calls/ID/ (see monitor/web/library.py):
   overview.json first (call, report, scorecard, the timeline's marks and loudness summaries: enough for
   the first drawing however long the call), then events.json (transcript, the overlay's events), and
   levels.json?chunk=N only for the stretch being looked at (zoomed in, or under the playhead).
   Everything follows the audio's current time: the playhead, the line being spoken and "the overlay
   as it was", folded by Calmline.reduce (calmline.js) from the events with t <= currentTime, as the
   overlay folded them live. The timeline zooms (wheel, buttons, + and -) down to MAX_PX_PER_S. */

const PARTIES = Calmline.PARTIES;
const NAMES = { agent: "Agent", customer: "Customer" };
const CUE_S = 8;             // how long the overlay keeps a cue up (overlay.js CUE_S)
const FADE_S = 1;            // its last second, fading
const OVERLAY_LINES = 3;     // transcript lines on the overlay (overlay.js TRANSCRIPT_LINES)
const FLOOR_DB = Calmline.FLOOR_DB;  // meters and the timeline show -60..0 dBFS
// Timeline geometry in CSS pixels (replay.css #plot and .gutter agree).
const CUE_ROW = 22;
const LANE = { agent: [26, 52], customer: [82, 52] };  // [top, height]
const AXIS_TOP = 138;
const MAX_PX_PER_S = 10;     // the deepest zoom: one second per 10 px
const ZOOM_STEP = 2;         // a button or key press halves or doubles the span shown
const MARKER_GAP = 12;       // px: cue markers closer than this are shown as one until zoomed apart
const MAX_CHUNKS_DRAWN = 4;  // levels are fetched for a view this many chunks wide at most (summaries beyond)
// The canvas draws in the page's palette (common.css).
const palette = getComputedStyle(document.documentElement);
const COLORS = Object.fromEntries(Object.entries({ agent: "--agent", customer: "--customer", overlap: "--overlap",
                                                   lane: "--panel", grid: "--grid", text: "--muted" })
  .map(([use, name]) => [use, palette.getPropertyValue(name).trim()]));

const $ = (id) => document.getElementById(id);
const audio = $("audio");
const ui = {
  plot: $("plot"), canvas: $("timeline-canvas"), markers: $("markers"), playhead: $("playhead"),
  clock: $("clock"), speed: $("speed"), problem: $("problem"), transcript: $("transcript"),
  ovTime: $("overlay-time"), ovView: $("overlay-view"), ovCueBox: $("ov-cue-box"), ovCue: $("ov-cue"),
  ovShare: $("ov-share"), ovTranscript: $("ov-transcript"), meter: {}, talk: {}, pace: {},
};
for (const p of PARTIES) {
  ui.meter[p] = $(`ov-meter-${p}`);
  ui.talk[p] = $(`ov-talk-${p}`);
  ui.pace[p] = $(`ov-pace-${p}`);
}

let data = null;     // overview.json
let duration = 0;    // seconds the call lasts
let view = { from: 0, to: 0 };  // the seconds the timeline shows
let timed = [];      // events other than levels, by t (ties in arrival order): the marks until events.json is in
let summary = [];    // [[t, end, agent_dbfs, customer_dbfs, agent_talking, customer_talking], ...] (SUMMARY_FORMAT)
const chunks = new Map();  // levels.json chunk number -> its rows [[t, agent_dbfs, customer_dbfs, agent_on, customer_on]], or a promise
let chunkS = 300;    // seconds per levels chunk (overview levels_chunk_s)
let lines = [];      // the final transcript: {party, start, end, text, el}
let shown = { t: -1, speaking: "" };

// ---- small helpers ----

function clock(t, tenths = false) {
  return Calmline.clock(t, { tenths });
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function problem(text) {
  ui.problem.textContent = ui.problem.textContent ? `${ui.problem.textContent} ${text}` : text;
  ui.problem.hidden = false;
}

function seek(t) {
  t = Math.min(Math.max(0, t), duration || t);
  const span = view.to - view.from;
  if (data && span < duration && (t < view.from || t > view.to)) setView(t - span / 2, span);  // bring it into view
  audio.currentTime = t;
  show(t, true);
}

// ---- loading, in pieces ----

async function fetchJSON(name) {
  const res = await fetch(name, { cache: "no-store" });
  if (!res.ok) throw new Error((await res.text()).trim() || res.statusText);
  return res.json();
}

async function load() {
  try {
    data = await fetchJSON("overview.json");
  } catch (err) {
    problem(`Could not load the call: ${err.message}`);
    return;
  }
  timed = (data.marks || []).filter((ev) => ev && typeof ev.t === "number").sort((a, b) => a.t - b.t);
  summary = data.summary || [];
  chunkS = data.levels_chunk_s || chunkS;
  duration = callDuration();
  view = { from: 0, to: duration };
  renderHeader(data.call || {});
  renderSummary(data.report);
  renderSentiment(data.report);
  drawTimeline();
  performance.mark("calmline-first-draw");
  new ResizeObserver(drawTimeline).observe(ui.plot);
  show(audio.currentTime, true);
  if (hashTime() !== null) seek(hashTime());
  let rest;
  try {
    rest = await fetchJSON("events.json");
  } catch (err) {
    problem(`Could not load the transcript: ${err.message}`);
    return;
  }
  const events = (rest.events || []).filter((ev) => ev && typeof ev.t === "number");
  timed = events.slice().sort((a, b) => a.t - b.t);  // a stable sort keeps arrival order for equal t
  storeProblems(events);
  buildTranscript(events);
  renderScorecard(rest.scorecard);
  document.body.classList.add("loaded");
  performance.mark("calmline-loaded");
  show(audio.currentTime, true);
}

function levelsChunk(n) {
  // The levels of chunk n, fetched once; null until they are in (whoever needs them redraws when they are).
  const have = chunks.get(n);
  if (Array.isArray(have)) return have;
  if (!have && n >= 0 && n * chunkS < duration) {
    chunks.set(n, fetchJSON(`levels.json?chunk=${n}`).then((piece) => {
      chunks.set(n, piece.levels || []);
      drawTimeline();
      show(audio.currentTime, true);
    }).catch((err) => {
      chunks.delete(n);
      problem(`Could not load the levels: ${err.message}`);
    }));
  }
  return null;
}

function callDuration() {
  // The overview's duration_s already covers the call's record, its report and its last level.
  const audioS = Number.isFinite(audio.duration) ? audio.duration : 0;
  return Math.max(data.duration_s || 0, (data.call && data.call.duration_s) || 0,
                  (data.report && data.report.duration_s) || 0, audioS, 0.1);
}

function renderHeader(call) {
  setText($("call-id"), call.id || "?");
  setText($("call-agent"), call.agent || "–");
  if (call.started_at) {
    const when = new Date(call.started_at * 1000);
    setText($("call-start"), when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
    $("call-start").title = when.toISOString();
  }
  setText($("call-duration"), clock(duration));
  document.title = `Call ${call.id || ""} – calmline replay`;
  const status = $("call-status");
  if (call.status && call.status !== "ended") {
    status.textContent = call.status === "recording" ? "still being recorded: reload for more"
      : call.status === "interrupted" ? "the monitor stopped mid-call" : call.status;
    status.dataset.status = call.status;
    status.hidden = false;
  }
}

function storeProblems(events) {
  for (const ev of events) {
    if (ev.type === "store" && ev.message) problem(`At ${clock(ev.t)}: ${ev.message}.`);
  }
}

// ---- transcript: final lines only (Calmline.finalLines: a final replaces the same party's earlier finals
// starting at or after it) ----

function buildTranscript(events) {
  lines = Calmline.finalLines(events).map((ev) => {
    const line = { party: ev.party, start: ev.start, end: ev.end, text: ev.text };
    line.el = el("p", {
      className: `line ${ev.party}`, tabIndex: 0, role: "button",
      title: `Play from ${clock(ev.start, true)}`, dataset: { start: String(ev.start), end: String(ev.end) },
    }, el("time", {}, clock(ev.start)), el("span", { className: "who" }, NAMES[ev.party]),
       el("span", { className: "text" }, line.text));
    line.el.addEventListener("click", () => seek(line.start));
    line.el.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        seek(line.start);
      }
    });
    return line;
  });
  ui.transcript.replaceChildren(...lines.map((l) => l.el));
  for (const ev of events.filter((e) => e.type === "note" && typeof e.text === "string")) {  // supervisors' words
    const next = lines.find((l) => l.start > ev.t);
    ui.transcript.insertBefore(el("p", { className: "line note", dataset: { t: String(ev.t) } }, el("time", {}, clock(ev.t)),
      el("span", { className: "who" }, `Note from ${ev.sender || "supervisor"}`), el("span", { className: "text" }, ev.text)),
    next ? next.el : null);
  }
  if (!lines.length) ui.transcript.append(el("p", { className: "empty" }, "No transcript for this call."));
}

function highlightLines(t, follow) {
  // Lines being spoken at t are highlighted (two at once while both talk); the last line begun by t is
  // kept in view, so a seek into a pause still brings the transcript to that point of the call.
  const speaking = lines.filter((l) => l.start <= t && t < l.end);
  let anchor = null;
  for (const l of lines) {
    if (l.start > t) break;
    anchor = l;
  }
  const key = `${speaking.map((l) => l.start).join()}|${anchor ? anchor.start : ""}`;
  if (key === shown.speaking) return;
  shown.speaking = key;
  for (const l of lines) l.el.classList.toggle("current", speaking.includes(l));
  if (follow) keepInView((speaking[0] || anchor || lines[0] || {}).el);
}

function keepInView(node) {
  const box = ui.transcript;
  if (!node) return;
  const top = node.offsetTop;
  if (top < box.scrollTop || top + node.offsetHeight > box.scrollTop + box.clientHeight) {
    const target = Math.max(0, top - box.clientHeight / 3);
    const far = Math.abs(target - box.scrollTop) > 2 * box.clientHeight;
    box.scrollTo({ top: target, behavior: far ? "auto" : "smooth" });
  }
}

// ---- the timeline: loudness, talk spurts, overlaps on a canvas; markers as elements ----
// It shows `view` (the whole call at first). Loudness is drawn from the summaries while one covers at least
// a pixel, and from the levels themselves (fetched a chunk at a time) once zoomed in further.

function x(t, width) {
  return ((t - view.from) / (view.to - view.from)) * width;
}

function drawTimeline() {
  if (!data) return;
  const width = ui.plot.clientWidth;
  const height = ui.plot.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  ui.canvas.width = Math.round(width * ratio);
  ui.canvas.height = Math.round(height * ratio);
  const g = ui.canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const visible = (a, b) => b >= view.from && a <= view.to;
  const spurts = timed.filter((e) => e.type === "talk_end" && e.party in LANE && typeof e.start === "number"
                                     && visible(e.start, e.t));
  for (const p of PARTIES) {
    g.fillStyle = COLORS.lane;
    g.fillRect(0, LANE[p][0], width, LANE[p][1]);
  }
  drawAxis(g, width);
  for (const p of PARTIES) {
    const [top, h] = LANE[p];
    g.globalAlpha = 0.22;  // talk spurts: a band across the lane
    g.fillStyle = COLORS[p];
    for (const s of spurts.filter((e) => e.party === p)) {
      const a = x(s.start, width);
      g.fillRect(a, top, Math.max(1, x(s.t, width) - a), h);
    }
    g.globalAlpha = 1;
  }
  g.fillStyle = COLORS.overlap;  // both talking: shaded across both lanes
  g.globalAlpha = 0.28;
  const spanTop = LANE.agent[0];
  const spanBottom = LANE.customer[0] + LANE.customer[1];
  for (const o of timed.filter((e) => e.type === "overlap" && typeof e.end === "number" && visible(e.t, e.end))) {
    const a = x(o.t, width);
    g.fillRect(a, spanTop, Math.max(2, x(o.end, width) - a), spanBottom - spanTop);
  }
  g.globalAlpha = 1;
  drawLoudness(g, width);
  placeMarkers();
  showZoom(width);
}

function loudnessRows(width) {
  // [[from, to, agent_dbfs, customer_dbfs], ...] for the view: summaries while one is no wider than a pixel's
  // worth of time, else the levels (each covering the 0.2 s before its t) once their chunks are in.
  const perPx = (view.to - view.from) / Math.max(1, width);
  const step = summary.length ? summary[0][1] - summary[0][0] : 0;
  const needed = Math.ceil((view.to - view.from) / chunkS) + 1;
  if (!summary.length || (step > perPx && needed <= MAX_CHUNKS_DRAWN)) {
    const rows = [];
    let complete = true;
    for (let n = Math.floor(Math.max(0, view.from - 0.2) / chunkS); n * chunkS <= view.to; n++) {
      const chunk = levelsChunk(n);
      if (!chunk) complete = false;
      else for (const r of chunk) if (r[0] >= view.from && r[0] - 0.2 <= view.to) rows.push([r[0] - 0.2, r[0], r[1], r[2]]);
    }
    if (complete || !summary.length) return rows;
  }
  return summary.filter((r) => r[1] >= view.from && r[0] <= view.to).map((r) => [r[0], r[1], r[2], r[3]]);
}

function drawLoudness(g, width) {
  // A pixel column shows the loudest level (or summary) that touches it.
  const columns = Math.ceil(width);
  const rows = loudnessRows(width);
  for (const [i, p] of PARTIES.entries()) {
    const peak = new Float32Array(columns).fill(FLOOR_DB);
    for (const row of rows) {
      const db = row[2 + i];
      if (typeof db !== "number" || db <= FLOOR_DB) continue;
      const a = Math.max(0, Math.floor(x(row[0], width)));
      const b = Math.min(columns, Math.max(a + 1, Math.ceil(x(row[1], width))));
      for (let c = a; c < b; c++) if (db > peak[c]) peak[c] = db;
    }
    const [top, h] = LANE[p];
    const mid = top + h / 2;
    g.fillStyle = COLORS[p];
    g.globalAlpha = 0.9;
    for (let c = 0; c < columns; c++) {
      if (peak[c] <= FLOOR_DB) continue;
      const half = Math.max(0.5, ((Math.min(0, peak[c]) - FLOOR_DB) / -FLOOR_DB) * (h / 2 - 3));
      g.fillRect(c, mid - half, 1, 2 * half);
    }
    g.globalAlpha = 1;
  }
}

function drawAxis(g, width) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const span = view.to - view.from;
  const step = steps.find((s) => (span / s) * 70 <= width) || 3600;
  g.font = "11px system-ui, sans-serif";
  g.textBaseline = "top";
  for (let t = Math.ceil(view.from / step) * step; t <= view.to + 1e-6; t += step) {
    const px = Math.round(x(t, width)) + 0.5;
    g.fillStyle = COLORS.grid;
    g.fillRect(px - 0.5, CUE_ROW, 1, AXIS_TOP - CUE_ROW);
    g.fillStyle = COLORS.text;
    const label = clock(t);
    const w = g.measureText(label).width;
    g.fillText(label, Math.min(Math.max(0, px - w / 2), width - w), AXIS_TOP + 2);
  }
}

let markerNodes = null;  // the markers, made once from the overview's marks

function pct(t) {
  return `${(100 * (t - view.from)) / (view.to - view.from)}%`;
}

function makeMarkers() {
  const nodes = [];
  const interruptions = (data.report && data.report.interruptions) || [];
  for (const ev of (data.marks || []).filter((e) => e.type === "interruption" && e.by in LANE)) {
    const other = ev.by === "agent" ? "customer" : "agent";
    // One definition of an interruption's overlap (report.interruption_overlap: the whole overlap it began).
    const same = interruptions.find((i) => Math.abs(i.t - ev.t) < 0.01 && i.by === ev.by);
    const overlapS = same ? same.overlap_s : ev.overlap_s;
    const over = typeof overlapS === "number" ? ` (${overlapS.toFixed(1)} s over them)` : "";
    const node = el("button", {
      type: "button", className: "interruption-marker", dataset: { t: String(ev.t), by: ev.by },
      title: `${clock(ev.t, true)} ${NAMES[ev.by]} interrupted the ${other}${over}`,
      "aria-label": `${NAMES[ev.by]} interrupted the ${other} at ${clock(ev.t)}`,
    });
    node.style.top = `${LANE[ev.by][0]}px`;
    nodes.push(node);
  }
  for (const ev of (data.marks || []).filter((e) => e.type === "cue").sort((a, b) => a.t - b.t)) {
    const text = ev.text || ev.kind;
    nodes.push(el("button", {
      type: "button", className: "cue-marker", dataset: { t: String(ev.t), kind: ev.kind || "" },
      title: `${clock(ev.t, true)} ${text}${ev.reason ? ` – ${ev.reason}` : ""}`,
      "aria-label": `Cue at ${clock(ev.t)}: ${text}`,
    }));
  }
  for (const node of nodes) {
    node.addEventListener("click", (e) => {
      e.stopPropagation();
      seek(Number(node.dataset.t));
    });
  }
  ui.markers.replaceChildren(...nodes);
  return nodes;
}

function placeMarkers() {
  // Markers in view; of cue markers closer than MARKER_GAP px, the first stands for the rest (its title
  // says how many) until a zoom parts them: a long call's hundreds of cues stay clickable.
  markerNodes = markerNodes || makeMarkers();
  const width = Math.max(1, ui.plot.clientWidth);
  let lead = null;
  let leadPx = -Infinity;
  for (const node of markerNodes) {
    const t = Number(node.dataset.t);
    const inView = t >= view.from && t <= view.to;
    const px = ((t - view.from) / (view.to - view.from)) * width;
    const cue = node.classList.contains("cue-marker");
    const covered = cue && inView && px - leadPx < MARKER_GAP;
    node.style.display = inView && !covered ? "" : "none";
    if (inView) node.style.left = pct(t);
    if (!cue) continue;
    node.title = node.dataset.title || (node.dataset.title = node.title);
    if (covered) {
      lead.dataset.more = String(Number(lead.dataset.more) + 1);
      lead.title = `${lead.dataset.title} (and ${lead.dataset.more} more cues: zoom in)`;
    } else if (inView) {
      lead = node;
      leadPx = px;
      lead.dataset.more = "0";
    }
  }
  ui.plot.setAttribute("aria-valuemax", String(Math.round(duration)));
}

// ---- zoom and pan ----

function minSpan() {
  return Math.min(duration, Math.max(1, ui.plot.clientWidth) / MAX_PX_PER_S);
}

function setView(from, span) {
  span = Math.min(Math.max(span, minSpan()), duration);
  from = Math.min(Math.max(0, from), duration - span);
  if (from === view.from && from + span === view.to) return;
  view = { from, to: from + span };
  drawTimeline();
  show(audio.currentTime, true);
}

function zoom(factor, around) {
  const span = view.to - view.from;
  const at = around === undefined ? Math.min(Math.max(audio.currentTime, view.from), view.to) : around;
  const next = Math.min(Math.max(span * factor, minSpan()), duration);
  setView(at - (at - view.from) * (next / span), next);
}

function showZoom(width) {
  const span = view.to - view.from;
  const pxPerS = width / span;
  setText($("zoom-label"), span >= duration - 1e-6 ? "whole call"
    : `${clock(view.from)}–${clock(view.to)} · ${pxPerS >= 1 ? `${pxPerS.toFixed(pxPerS < 10 ? 1 : 0)} px per second`
                                                          : `${(1 / pxPerS).toFixed(1)} s per px`}`);
  $("zoom-in").disabled = span <= minSpan() + 1e-6;
  $("zoom-out").disabled = $("zoom-fit").disabled = span >= duration - 1e-6;
}

$("zoom-in").addEventListener("click", () => zoom(1 / ZOOM_STEP));
$("zoom-out").addEventListener("click", () => zoom(ZOOM_STEP));
$("zoom-fit").addEventListener("click", () => setView(0, duration));

ui.plot.addEventListener("wheel", (e) => {
  if (!data) return;
  e.preventDefault();
  const box = ui.plot.getBoundingClientRect();
  const span = view.to - view.from;
  const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? box.width : 1;  // lines, pages, pixels
  if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {  // sideways: pan
    const d = (e.shiftKey && !e.deltaX ? e.deltaY : e.deltaX) * unit;
    setView(view.from + (d / box.width) * span, span);
  } else {
    const at = view.from + ((e.clientX - box.left) / box.width) * span;
    zoom(Math.exp(e.deltaY * unit * 0.002), at);
  }
}, { passive: false });

ui.plot.addEventListener("click", (e) => {
  if (!data) return;
  const box = ui.plot.getBoundingClientRect();
  seek(view.from + ((e.clientX - box.left) / box.width) * (view.to - view.from));
});

ui.plot.addEventListener("keydown", (e) => {
  const moves = { ArrowLeft: -5, ArrowRight: 5, PageDown: -30, PageUp: 30 };
  if (e.key in moves) seek(audio.currentTime + moves[e.key]);
  else if (e.key === "Home") seek(0);
  else if (e.key === "End") seek(duration);
  else if (e.key === " ") audio.paused ? audio.play() : audio.pause();
  else if (e.key === "+" || e.key === "=") zoom(1 / ZOOM_STEP);
  else if (e.key === "-") zoom(ZOOM_STEP);
  else if (e.key === "0") setView(0, duration);
  else return;
  e.preventDefault();
});

// ---- the overlay as it was at time t ----

function levelAt(t) {
  // The last level at or before t, from its chunk (or the one before, at a chunk's start); null while
  // the chunk is being fetched (the overlay is drawn again when it is in).
  const n = Math.floor(Math.max(0, t) / chunkS);
  let levels = levelsChunk(n);
  if (levels && (!levels.length || levels[0][0] > t) && n > 0) levels = levelsChunk(n - 1);
  if (!levels) return null;
  let lo = 0;
  let hi = levels.length - 1;
  if (hi < 0 || levels[0][0] > t) return null;
  while (lo < hi) {  // the last level with levels[i][0] <= t
    const mid = (lo + hi + 1) >> 1;
    if (levels[mid][0] <= t) lo = mid;
    else hi = mid - 1;
  }
  return levels[lo];
}

function overlayAt(t) {
  // Every event up to t through the overlay's reducer, then the level row in effect at t.
  const st = Calmline.state({ lines: OVERLAY_LINES });
  for (const ev of timed) {
    if (ev.t > t) break;
    Calmline.reduce(st, ev);
  }
  const row = st.ended ? null : levelAt(t);
  Calmline.reduce(st, { type: "levels", t, levels: { agent: row ? row[1] : null, customer: row ? row[2] : null },
                        talking: { agent: Boolean(row && row[3]), customer: Boolean(row && row[4]) } });
  return st;
}

function renderOverlay(t) {
  const st = overlayAt(t);
  setText(ui.ovTime, clock(t));
  ui.ovView.classList.toggle("ended", st.ended);
  ui.ovCueBox.dataset.idle = st.ended ? "Call ended" : "No cue";
  const cue = Calmline.currentCue(st, CUE_S);
  setText(ui.ovCue, cue ? cue.text : "");
  ui.ovCue.dataset.kind = cue ? cue.kind : "";
  ui.ovCue.classList.toggle("show", Boolean(cue));
  ui.ovCue.classList.toggle("fading", Boolean(cue) && Calmline.cueAge(st, cue) > CUE_S - FADE_S);
  ui.ovCue.title = cue && cue.reason ? `${clock(cue.t, true)}: ${cue.reason}` : "";
  for (const p of PARTIES) {
    Calmline.setMeter(ui.meter[p], st.levels[p]);
    ui.talk[p].classList.toggle("on", st.talking[p]);
    setText(ui.pace[p], Calmline.wpm(st.wpm[p]));
  }
  setText(ui.ovShare, Calmline.percent(Calmline.share(st)));
  Calmline.showLines(ui.ovTranscript, Calmline.lines(st));
}

// ---- following the audio ----

function show(t, force = false) {
  if (!data || (!force && t === shown.t)) return;
  shown.t = t;
  const span = view.to - view.from;
  if (!audio.paused && span < duration && (t > view.to || t < view.from)) {  // playing on past the view: turn the page
    setView(t - span * 0.05, span);
  }
  ui.playhead.style.display = t < view.from || t > view.to ? "none" : "";
  ui.playhead.style.left = pct(Math.min(Math.max(t, 0), duration));
  setText(ui.clock, `${clock(t, true)} / ${clock(duration)}`);
  ui.plot.setAttribute("aria-valuenow", String(Math.round(t)));
  ui.plot.setAttribute("aria-valuetext", clock(t));
  highlightLines(t, !audio.paused || force);
  renderOverlay(t);
}

let following = false;

function follow() {
  show(audio.currentTime);
  if (audio.paused || audio.ended) {
    following = false;
    return;
  }
  requestAnimationFrame(follow);
}

audio.addEventListener("play", () => {
  if (!following) {
    following = true;
    requestAnimationFrame(follow);
  }
});
for (const kind of ["timeupdate", "pause", "ended"]) audio.addEventListener(kind, () => show(audio.currentTime));
for (const kind of ["seeking", "seeked"]) audio.addEventListener(kind, () => show(audio.currentTime, true));
audio.addEventListener("loadedmetadata", () => {
  if (data && Number.isFinite(audio.duration) && audio.duration > duration + 0.05) {
    const whole = view.to >= duration - 1e-6;
    duration = callDuration();
    if (whole) view = { from: 0, to: duration };
    setText($("call-duration"), clock(duration));
    drawTimeline();
    show(audio.currentTime, true);
  }
});
audio.addEventListener("error", () => {
  const codes = { 1: "loading was aborted", 2: "a network error", 3: "it could not be decoded",
                  4: "the format is not supported or there is no recording" };
  const code = audio.error ? audio.error.code : 0;
  problem(`The recording cannot be played: ${codes[code] || "unknown error"}.`);
});

// ---- playback speed ----

ui.speed.addEventListener("change", () => {
  const rate = Number(ui.speed.value) || 1;
  audio.playbackRate = rate;
  audio.defaultPlaybackRate = rate;  // kept if the media reloads
});
audio.addEventListener("ratechange", () => {
  const option = [...ui.speed.options].find((o) => Number(o.value) === audio.playbackRate);
  if (option) ui.speed.value = option.value;
});

// ---- summary and scorecard ----

function renderSummary(report) {
  if (!report || !report.parties) return;
  const total = PARTIES.reduce((sum, p) => sum + ((report.parties[p] || {}).talk_s || 0), 0);
  const rows = PARTIES.filter((p) => report.parties[p]).map((p) => {
    const r = report.parties[p];
    const share = total > 0 ? ` (${Math.round((100 * r.talk_s) / total)}%)` : "";
    return el("tr", { className: p },
      el("th", { scope: "row" }, NAMES[p]),
      el("td", {}, `${r.talk_s < 60 ? `${r.talk_s.toFixed(1)} s` : clock(r.talk_s)}${share}`),
      el("td", {}, r.loudness_dbfs == null ? "–" : `${r.loudness_dbfs.toFixed(1)} dBFS`),
      el("td", {}, r.wpm == null ? "–" : `${Math.round(r.wpm)} wpm`),
      el("td", {}, String(r.interruptions)));
  });
  $("summary").tBodies[0].replaceChildren(...rows);
  const n = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
  setText($("summary-counts"), [clock(report.duration_s), n((report.overlaps || []).length, "overlap"),
                                n((report.interruptions || []).length, "interruption"),
                                n((report.cues || []).length, "cue")].join(" · "));
}

function renderSentiment(report) {
  // The customer's sentiment per quarter of the call (report.sentiment.customer, -1 upset to +1 pleased): a
  // button per quarter, which plays from its start.
  const quarters = report && report.sentiment && report.sentiment.customer;
  if (!Array.isArray(quarters) || quarters.length !== 4) return;
  const word = (v) => (v <= -0.5 ? "upset" : v <= -0.2 ? "unhappy" : v >= 0.2 ? "pleased" : "neutral");
  const row = el("p", { id: "sentiment", title: "The customer's sentiment from their words and voice: -1 upset, +1 pleased" },
                 el("span", { className: "label" }, "Customer sentiment by quarter "));
  quarters.forEach((v, i) => {
    const from = (duration * i) / 4;
    const go = el("button", { type: "button", className: "seek", dataset: { quarter: String(i + 1), value: String(v),
                                                                        mood: word(v) },
                              title: `Quarter ${i + 1} (from ${clock(from)}): ${word(v)}` },
                  `${v > 0 ? "+" : ""}${v.toFixed(2)} ${word(v)}`);
    go.style.color = v <= -0.2 ? "var(--alert)" : v >= 0.2 ? "var(--ok)" : "";  // common.css's palette
    go.addEventListener("click", () => seek(from));
    row.append(go, " ");
  });
  const old = $("sentiment");
  if (old) old.replaceWith(row);
  else $("summary-counts").after(row);
}

function renderScorecard(card) {
  // Each item met, partial (its credit) or missed, its evidence, and every time a behaviour happened as a
  // #t=S link (the same links the report gives: a link from elsewhere opens the replay at that moment).
  if (!card || !Array.isArray(card.items)) return;
  const met = `${card.met} of ${card.total} met`;
  setText($("scorecard-total"), Number.isFinite(card.score) ? `score ${card.score} of 100 · ${met}` : met);
  $("scorecard").replaceChildren(...card.items.map((item) => {
    const credit = Number.isFinite(item.credit) ? item.credit : Number(item.met);
    const state = item.met ? "met" : credit > 0 ? "partial" : "missed";
    const children = [el("span", { className: "mark" }, state === "partial" ? `${Math.round(100 * credit)}%` : state),
                      el("strong", {}, item.title || item.item)];
    if (typeof item.t === "number") {
      const go = el("button", { type: "button", className: "seek", title: `Play from ${clock(item.t, true)}` },
                    clock(item.t));
      go.addEventListener("click", () => seek(item.t));
      children.push(go);
    }
    children.push(el("p", { className: "evidence" }, item.basis ?? item.evidence ?? ""));
    for (const note of item.notes || []) {
      const at = note.at || [];
      if (!at.length) {
        children.push(el("p", { className: "evidence finding" }, note.text || ""));
        continue;
      }
      const same = note.detail || "";  // a detail every time shares is said once
      const times = at.flatMap((a, i) => [i ? ", " : "", el("a", { href: `#t=${a.t}` }, clock(a.t)),
                                          a.detail && !same ? ` ${a.detail}` : ""]);
      const aside = !same ? "" : same.startsWith("(") ? ` ${same}` : ` (${same})`;
      const count = (note.count === 1 ? "once" : `${note.count} times`) + aside;
      children.push(el("p", { className: "evidence finding" }, `${note.what} ${count}: `, ...times));
    }
    return el("li", { className: `score-item ${state}`, dataset: { item: item.item } }, ...children);
  }));
  $("scorecard-pane").hidden = false;
}

function hashTime() {
  // "#t=26" (seconds): where a link from the scorecard or the report asks the replay to start.
  const m = /^#t=(\d+(?:\.\d+)?)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

window.addEventListener("hashchange", () => {
  const t = hashTime();
  if (t !== null && data) seek(t);
});

load();
