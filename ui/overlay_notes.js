"use strict";
/* calmline overlay, the supervisor's side of it: notes a supervisor sends from the floor (`note` events), shown
   apart from cues (a cue is advice from the call's sound; a note is a person's word) until the agent dismisses
   them, and after a call recorded on the server the agent's self-view (`call_summary` with `self_view`): the
   score out of 100, one thing that went well, one to try next time, a link to their own replay. overlay.js
   hands every event to CalmlineNotes.handle. Text is only ever set as text, never as markup. */

const CalmlineNotes = (() => {
  const root = document.getElementById("root");
  const anchor = document.getElementById("cue-box");
  const notes = document.createElement("section");
  notes.id = "notes";
  notes.className = "notes";
  notes.setAttribute("aria-live", "assertive");
  notes.setAttribute("aria-label", "From your supervisor");
  const view = document.createElement("section");
  view.id = "self-view";
  view.className = "self-view";
  view.setAttribute("aria-label", "Your call");
  view.hidden = true;
  anchor.after(notes, view);

  const KEY = "calmline.notes.dismissed";
  let callId = null;
  const shown = new Set();

  function dismissed() {
    try {
      return new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]"));
    } catch {
      return new Set();
    }
  }

  function dismiss(key, el) {
    el.remove();
    const all = [...dismissed(), key].slice(-100);  // survives a reload of this tab, and stays small
    try { sessionStorage.setItem(KEY, JSON.stringify(all)); } catch { /* private mode: until reload */ }
  }

  function text(tag, className, value) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = value;
    return el;
  }

  function note(ev) {
    const key = `${callId}:${ev.id}`;
    if (shown.has(key) || dismissed().has(key)) return;
    shown.add(key);
    const el = document.createElement("article");
    el.className = "note";
    el.dataset.id = String(ev.id);
    if (ev.card) el.dataset.card = ev.card;
    const head = text("header", "", "");
    head.append(text("span", "from", `From ${ev.sender || "your supervisor"}`));
    const close = text("button", "dismiss", "Dismiss");
    close.type = "button";
    close.addEventListener("click", () => dismiss(key, el));
    head.append(close);
    el.append(head, text("p", "words", ev.text || ""));
    notes.prepend(el);
  }

  function selfView(v) {
    view.replaceChildren();
    view.append(text("h2", "", "Your call"));
    const score = text("p", "score", "");
    score.append(text("b", "", String(v.score)), document.createTextNode(" / 100"));
    view.append(score);
    for (const [part, label] of [["well", "Went well"], ["next", "Try next time"]]) {
      const item = v[part];
      if (!item) continue;
      const p = text("p", part, "");
      p.append(text("span", "label", label), text("b", "", item.title));
      if (item.text) p.append(text("span", "detail", item.text));
      view.append(p);
    }
    if (typeof v.replay === "string" && v.replay.startsWith("/calls/")) {
      const link = text("a", "replay", "Open your replay");
      link.href = v.replay;
      link.target = "_blank";
      link.rel = "noopener";
      view.append(link);
    } else if (typeof v.command === "string") {  // calmline live and demo: the call is replayed from here
      const p = text("p", "replay-command", "Replay it: ");
      p.append(text("code", "", v.command));
      view.append(p);
    }
    view.hidden = false;
    root.classList.add("self-viewing");
  }

  function handle(ev) {
    if (!ev || typeof ev !== "object") return;
    if (ev.type === "call_start") {
      if (ev.call_id !== callId) {
        notes.replaceChildren();
        shown.clear();
      }
      callId = ev.call_id;
      view.hidden = true;
      root.classList.remove("self-viewing");
    } else if (ev.type === "note") {
      note(ev);
    } else if (ev.type === "call_summary" && ev.self_view && typeof ev.self_view === "object") {
      selfView(ev.self_view);  // the server's overlay, after a call recorded there
    } else if (ev.type === "self_view" && ev.call_id === callId) {
      selfView(ev);  // calmline live and demo, after their call
    }
  }

  return { handle };
})();
