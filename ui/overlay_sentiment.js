"use strict";
/* calmline overlay: the customer's sentiment trend (`sentiment` events, docs/protocol.md), a small line of
   the last readings from -1 (upset) to +1 (pleased) with a word for the latest one, so the agent sees at a
   glance whether the customer is calming down. overlay.js owns the page's one stream and hands each event
   to `handle` here, as it does to overlay_notes.js. Text is only ever set as text. */

const CalmlineSentiment = (() => {
  const KEEP = 24;  // readings on the line (about a minute of the customer talking, at one per 3 s or less)
  const NS = "http://www.w3.org/2000/svg";
  const W = 96;
  const H = 16;

  // Styled through the CSSOM: the pages' Content-Security-Policy allows no inline <style>, and the overlay
  // takes two stylesheets (common.css, overlay.css). Colours are common.css's.
  const box = document.createElement("section");
  box.id = "sentiment";
  box.hidden = true;
  Object.assign(box.style, { alignItems: "center", gap: "8px", fontSize: "11px", color: "var(--muted)", flex: "none" });
  box.setAttribute("role", "meter");
  box.setAttribute("aria-label", "Customer sentiment");
  box.setAttribute("aria-valuemin", "-1");
  box.setAttribute("aria-valuemax", "1");
  box.title = "The customer's sentiment from their words and voice: -1 upset, +1 pleased";
  const label = document.createElement("span");
  label.textContent = "Customer mood";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("aria-hidden", "true");
  Object.assign(svg.style, { width: `${W}px`, height: `${H}px`, flex: "none" });
  const zero = document.createElementNS(NS, "line");
  zero.setAttribute("class", "zero");
  zero.setAttribute("x1", "0");
  zero.setAttribute("x2", String(W));
  zero.setAttribute("y1", String(H / 2));
  zero.setAttribute("y2", String(H / 2));
  Object.assign(zero.style, { stroke: "var(--line)", strokeWidth: "1" });
  const line = document.createElementNS(NS, "polyline");
  Object.assign(line.style, { fill: "none", stroke: "var(--customer)", strokeWidth: "1.6", strokeLinejoin: "round" });
  svg.append(zero, line);
  const mood = document.createElement("span");
  mood.className = "mood";
  mood.style.fontWeight = "600";
  const COLOURS = { upset: "var(--alert)", unhappy: "var(--alert)", pleased: "var(--ok)", neutral: "var(--text)" };
  box.append(label, svg, mood);
  (document.getElementById("parties") || document.getElementById("cue-box")).after(box);

  let readings = [];

  function word(v) {
    if (v <= -0.5) return "upset";
    if (v <= -0.2) return "unhappy";
    if (v >= 0.2) return "pleased";
    return "neutral";
  }

  function draw() {
    const last = readings[readings.length - 1];
    const step = W / Math.max(KEEP - 1, 1);
    const x0 = W - step * (readings.length - 1);
    line.setAttribute("points", readings.map((v, i) =>
      `${(x0 + i * step).toFixed(1)},${((1 - v) * (H - 2) / 2 + 1).toFixed(1)}`).join(" "));
    const before = readings.length > 3 ? readings[readings.length - 4] : readings[0];
    const arrow = last - before <= -0.1 ? " ↓" : last - before >= 0.1 ? " ↑" : "";
    mood.textContent = `${word(last)}${arrow}`;
    box.dataset.mood = word(last);
    mood.style.color = COLOURS[word(last)];
    box.dataset.trend = last.toFixed(2);
    box.setAttribute("aria-valuenow", last.toFixed(2));
    box.setAttribute("aria-valuetext", `${word(last)} (${last.toFixed(2)})`);
    box.hidden = false;
    box.style.display = "flex";
  }

  function handle(ev) {
    if (!ev || typeof ev !== "object") return;
    if (ev.type === "call_start") {
      readings = [];
      box.hidden = true;
      box.style.display = "none";
    } else if (ev.type === "sentiment" && ev.party === "customer" && Number.isFinite(ev.trend)) {
      readings = [...readings, Math.max(-1, Math.min(1, ev.trend))].slice(-KEEP);
      draw();
    }
  }

  return Object.freeze({ handle });
})();
