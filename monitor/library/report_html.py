"""The call report as one self-contained HTML page: figures, plots, transcript and scorecard for a coach.

Everything is inline (CSS, SVG), nothing is fetched and no script runs, so the page can be mailed,
archived or printed as it is. Built from the events' JSON form, like the scorecard.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

from .. import PARTIES
from ..config import Config
from .report import build_report, interruption_overlap
from .scorecard import clock, events_from_dicts, score_call

FLOOR_DBFS = -60.0
W = 960                    # SVG user units; the plots scale to the page width
LEFT, RIGHT = 64, 16       # room for the y axis labels and lane names
CUE_LANE = 26              # height of one cue kind's lane: its name, then its marks
CUE_GROUP = 10             # cues of a kind closer than this (SVG units) are drawn as one group with a count
CUE_GUIDES = 40            # up to this many groups, each has a faint guide line down through the plot

CSS = """
:root { --ink: #24303b; --muted: #6b7783; --line: #e2e6ea; --paper: #ffffff; --bg: #f4f5f3;
  --agent: #2f6fa3; --customer: #7e57b0; --overlap: #9aa5ae; --cue: #8a6a3a; --cut: #b0483a;
  --met: #2e7650; --met-bg: #e5f1ea; --missed: #9c4a35; --missed-bg: #f7e9e4; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 20px 48px; }
header { margin-bottom: 18px; }
h1 { font-size: 22px; font-weight: 600; margin: 0 0 10px; letter-spacing: -0.01em; }
h1 .id { color: var(--muted); font-weight: 400; }
h2 { font-size: 15px; font-weight: 600; margin: 0 0 12px; }
h2 .aside { color: var(--muted); font-weight: 400; margin-left: 8px; }
dl.meta { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 0; }
dl.meta div { display: flex; gap: 6px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-weight: 500; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 18px; margin: 14px 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px 6px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
tr:last-child td { border-bottom: none; }
td.num { font-variant-numeric: tabular-nums; }
.party-agent { color: var(--agent); }
.party-customer { color: var(--customer); }
.summary th.party { text-transform: none; font-size: 14px; font-weight: 600; letter-spacing: 0; }
.summary td:first-child { color: var(--muted); width: 34%; }
.note { color: var(--muted); font-size: 13px; margin: 10px 0 0; }
.badge { display: inline-block; min-width: 62px; text-align: center; border-radius: 999px; padding: 1px 10px;
  font-size: 12px; font-weight: 600; }
.badge.met { color: var(--met); background: var(--met-bg); }
.badge.missed { color: var(--missed); background: var(--missed-bg); }
.badge.partial { color: #8a5a14; background: #f8eedc; }
.scorecard .finding a { color: inherit; font-variant-numeric: tabular-nums; }
.scorecard td.item { font-weight: 500; width: 30%; }
.scorecard td.result { width: 112px; }
.scorecard td.evidence { color: #3c4853; }
.scorecard td.when { width: 48px; color: var(--muted); font-variant-numeric: tabular-nums; text-align: right; }
svg { display: block; width: 100%; height: auto; font-family: inherit; }
svg text { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: #c9d0d6; stroke-width: 1; }
svg .level { fill: none; stroke-width: 1.4; stroke-linejoin: round; }
svg .level.quiet { stroke-width: 1; stroke-opacity: 0.3; }
svg .agent { stroke: var(--agent); }
svg .customer { stroke: var(--customer); }
svg .spurt.agent { fill: var(--agent); stroke: none; opacity: 0.75; }
svg .spurt.customer { fill: var(--customer); stroke: none; opacity: 0.75; }
svg .overlap-band { fill: var(--overlap); opacity: 0.22; }
svg .cue-marker line { stroke: var(--cue); stroke-width: 1.6; }
svg .cue-group circle { fill: var(--cue); }
svg .cue-group text { fill: var(--cue); font-size: 9px; font-weight: 600; }
svg .cue-guide { stroke: var(--cue); stroke-width: 1; stroke-dasharray: 3 3; opacity: 0.35; }
svg .cue-lane-name { fill: var(--cue); font-weight: 500; }
svg .cue-lane { fill: var(--cue); opacity: 0.05; }
svg .interruption-marker path { fill: var(--cut); }
svg .interruption-marker line { stroke: var(--cut); stroke-width: 1.2; }
svg .pace-line { fill: none; stroke-width: 1.6; }
svg .pace-dot.agent { fill: var(--agent); stroke: none; }
svg .pace-dot.customer { fill: var(--customer); stroke: none; }
svg .fast { stroke: var(--cue); stroke-dasharray: 4 4; opacity: 0.6; }
svg .lane-name.agent { fill: var(--agent); stroke: none; }
svg .lane-name.customer { fill: var(--customer); stroke: none; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 8px 0 0; padding: 0; list-style: none;
  color: var(--muted); font-size: 12px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 16px; height: 3px; border-radius: 2px; }
.swatch.agent { background: var(--agent); }
.swatch.customer { background: var(--customer); }
.swatch.overlap { height: 10px; background: var(--overlap); opacity: 0.45; }
.swatch.cut { width: 0; height: 0; border-left: 5px solid transparent; border-right: 5px solid transparent;
  border-top: 8px solid var(--cut); border-radius: 0; }
.swatch.cue { width: 0; height: 12px; border-left: 1px dashed var(--cue); border-radius: 0; }
.sentiment table { width: auto; }
.sentiment td.num { min-width: 86px; font-weight: 600; }
.sentiment td.neg { color: var(--missed); }
.sentiment td.pos { color: var(--met); }
svg .sentiment-line { fill: none; stroke: var(--customer); stroke-width: 1.6; }
svg .quarter { stroke: #c9d0d6; stroke-dasharray: 3 3; }
.moments { margin-top: 12px; }
.moments td:first-child { width: 48px; color: var(--muted); font-variant-numeric: tabular-nums; }
.moments td.kind { width: 210px; white-space: nowrap; color: var(--cue); font-weight: 500; }
.moments td.kind.cut { color: var(--cut); }
.moments td.reason { color: var(--muted); }
ol.transcript { list-style: none; margin: 0; padding: 0; }
ol.transcript li { display: grid; grid-template-columns: 48px 80px 1fr; gap: 10px; padding: 5px 0 5px 10px;
  border-left: 3px solid transparent; }
ol.transcript li + li { border-top: 1px solid #f0f2f4; }
ol.transcript li.agent { border-left-color: var(--agent); }
ol.transcript li.customer { border-left-color: var(--customer); background: #faf8fc; }
ol.transcript time { color: var(--muted); font-variant-numeric: tabular-nums; }
ol.transcript .who { font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  section { border: none; border-top: 1px solid var(--line); border-radius: 0; padding: 12px 0; margin: 0; }
  section.plot, section.scorecard, section.summary { break-inside: avoid; }
  ol.transcript li { break-inside: avoid; }
}
"""


def render_report(call: dict, events: list, config: Config | None = None) -> str:
    """The whole page; `call` is metadata (id, agent, started_at, duration_s, source), missing keys come from events.
    `config` is the user's (default: the defaults): its scorecard phrases, "fast" pace and pace window."""
    config = config or Config()
    events = [_complete(e) for e in events_from_dicts(events)]
    report = build_report(events)
    card = score_call(events, config)
    start = next((e for e in events if e.type == "call_start"), None)
    meta = {
        "id": call.get("id") or (start.call_id if start else ""),
        "agent": call.get("agent") or "",
        "started_at": call.get("started_at") or (start.started_at if start else None),
        "duration_s": call.get("duration_s") if call.get("duration_s") is not None else report["duration_s"],
        "source": call.get("source") or (start.source if start else ""),
    }
    duration = max(float(meta["duration_s"] or 0.0), max((e.t for e in events), default=0.0), 1.0)
    body = "\n".join([
        _header(meta),
        _summary(report),
        _scorecard(card),
        _sentiment_section(report["sentiment"]["customer"], events, duration),
        _loudness_section(events, duration),
        _pace_section(events, duration, config.cues.slow_down.min_wpm, config.transcription.pace_window_s),
        _transcript(report["transcript"]),
        "<footer>calmline call report. Times are m:ss from the start of the call; levels in dBFS "
        "(0 is full scale).</footer>",
    ])
    title = f"Call {meta['id']}" if meta["id"] else "Call report"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)} - calmline</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def _complete(event):
    """A call_end lacking a party's totals gets empty ones, so a partly written record still renders."""
    if event.type != "call_end":
        return event
    given = event.parties if isinstance(event.parties, dict) else {}
    parties = {p: {"talk_level_dbfs": None, "voiced_s": 0.0, "wpm": None,
                   **(given[p] if isinstance(given.get(p), dict) else {})} for p in PARTIES}
    return type(event)(t=event.t, parties={**given, **parties})


# --- text sections ----------------------------------------------------------------------------------

def _local_time(ts) -> str:
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(float(ts)).astimezone().strftime("%a %d %b %Y, %H:%M:%S %Z")
    except (OverflowError, OSError, ValueError):
        return ""


def _header(meta: dict) -> str:
    rows = [("Agent", meta["agent"] or "unknown"), ("Started", _local_time(meta["started_at"]) or "unknown"),
            ("Duration", clock(float(meta["duration_s"] or 0.0)))]
    if meta["source"]:
        rows.append(("Source", meta["source"]))
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in rows)
    ident = f' <span class="id">{escape(str(meta["id"]))}</span>' if meta["id"] else ""
    return f'<header>\n<h1>Call report{ident}</h1>\n<dl class="meta">{items}</dl>\n</header>'


def _summary(report: dict) -> str:
    parties = report["parties"]
    total = sum(p["talk_s"] for p in parties.values())

    def row(name: str, cell) -> str:
        return f"<tr><td>{escape(name)}</td>" + "".join(
            f'<td class="num">{escape(cell(parties[p]))}</td>' for p in PARTIES) + "</tr>"

    rows = [
        row("Talk time", lambda p: f"{p['talk_s']:.1f} s"),
        row("Talk share", lambda p: f"{100 * p['talk_s'] / total:.0f}%" if total else "-"),
        row("Loudness", lambda p: "-" if p["loudness_dbfs"] is None else f"{p['loudness_dbfs']:.1f} dBFS"),
        row("Pace", lambda p: "-" if p["wpm"] is None else f"{p['wpm']:.0f} wpm"),
        row("Interruptions", lambda p: str(p["interruptions"])),
    ]
    head = "".join(f'<th class="party party-{p}">{escape(p.capitalize())}</th>' for p in PARTIES)
    n_cues, n_over = len(report["cues"]), len(report["overlaps"])
    note = (f"{n_cues} cue{'s' * (n_cues != 1)} shown to the agent, "
            f"{n_over} overlap{'s' * (n_over != 1)} of both voices.")
    return (f'<section class="summary">\n<h2>Summary</h2>\n<table>\n<thead><tr><th></th>{head}</tr></thead>\n'
            f"<tbody>{''.join(rows)}</tbody>\n</table>\n<p class=\"note\">{escape(note)}</p>\n</section>")


def _scorecard(card: dict) -> str:
    """Each item's result (met, partial with its credit, missed) and evidence; every time a behaviour
    happened is a link into the call's replay (./#t=S from the served report at /calls/{id}/report)."""
    rows = []
    for i in card["items"]:
        credit = i.get("credit", float(i["met"]))
        state = "met" if i["met"] else "partial" if credit > 0 else "missed"
        label = f"Partial {100 * credit:.0f}%" if state == "partial" else state.capitalize()
        when = "" if i["t"] is None else clock(i["t"])
        notes = "".join(f"<br>{_finding(n)}" for n in i.get("notes", []))
        rows.append(f'<tr data-item="{escape(i["item"])}" data-met="{str(i["met"]).lower()}" data-credit="{credit:g}">'
                    f'<td class="item">{escape(i["title"])}</td>'
                    f'<td class="result"><span class="badge {state}">{label}</span></td>'
                    f'<td class="evidence">{escape(i.get("basis", i["evidence"]))}{notes}</td>'
                    f'<td class="when">{escape(when)}</td></tr>')
    aside = f'score {card["score"]} of 100 · {card["met"]} of {card["total"]} met'
    return (f'<section class="scorecard">\n<h2>De-escalation scorecard<span class="aside">{escape(aside)}</span></h2>\n'
            '<table>\n<thead><tr><th>Item</th><th>Result</th><th>Evidence</th><th class="when">At</th></tr></thead>\n'
            f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n</section>")


def _finding(note: dict) -> str:
    """ "talked over the customer 3 times: 0:26, 1:02, 4:10", each time a link into the replay."""
    if not note["at"]:
        return f'<span class="finding">{escape(note["text"])}</span>'
    same = note.get("detail", "")  # a detail every time shares is said once
    times = ", ".join(f'<a href="./#t={a["t"]:g}">{clock(a["t"])}</a>'
                      + (f' {escape(a["detail"])}' if a["detail"] and not same else "") for a in note["at"])
    count = ("once" if note["count"] == 1 else f'{note["count"]} times') + \
        ("" if not same else f" {escape(same)}" if same.startswith("(") else f" ({escape(same)})")
    return f'<span class="finding" data-count="{note["count"]}">{escape(note["what"])} {count}: {times}</span>'


def _sentiment_section(quarters: list[float], events: list, duration: float) -> str:
    """The customer's sentiment per quarter of the call (the report's four numbers) and its live trend."""
    def cell(v: float) -> str:
        tone = "neg" if v <= -0.2 else "pos" if v >= 0.2 else ""
        word = "upset" if v <= -0.5 else "unhappy" if v <= -0.2 else "pleased" if v >= 0.2 else "neutral"
        return f'<td class="num {tone}" data-value="{v:.3f}">{v:+.2f} {word}</td>'

    head = "".join(f"<th>Quarter {i + 1}</th>" for i in range(len(quarters)))
    table = f"<table><thead><tr>{head}</tr></thead><tbody><tr>{''.join(map(cell, quarters))}</tr></tbody></table>"
    axis = _Axis(duration)
    top, height = 10, 80

    def y(v: float) -> float:
        return top + height * (1 - v) / 2

    points = [(axis.x(e.t), e.trend) for e in events if e.type == "sentiment" and e.trend is not None]
    parts = [f'<svg class="sentiment-trend" viewBox="0 0 {W} {top + height + 24}" role="img" '
             'aria-label="The customer\'s sentiment trend over the call, from -1 (upset) to +1 (pleased)">']
    for v, label in ((1, "+1"), (0, "0"), (-1, "-1")):
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{_fmt(y(v))}" x2="{W - RIGHT}" y2="{_fmt(y(v))}"/>'
                     f'<text x="{LEFT - 6}" y="{_fmt(y(v) + 4)}" text-anchor="end">{label}</text>')
    parts.append(axis.ticks(top, top + height))
    for k in (1, 2, 3):
        x = axis.x(duration * k / 4)
        parts.append(f'<line class="quarter" x1="{_fmt(x)}" y1="{top}" x2="{_fmt(x)}" y2="{top + height}"/>')
    if len(points) > 1:
        parts.append(f'<polyline class="sentiment-line" points="{" ".join(f"{_fmt(x)},{_fmt(y(v))}" for x, v in points)}"/>')
    parts.append("</svg>")
    aside = "from the customer's words and voice, -1 upset to +1 pleased"
    return (f'<section class="sentiment">\n<h2>Customer sentiment<span class="aside">{escape(aside)}</span></h2>\n'
            f'{table}\n{"".join(parts) if points else ""}\n</section>')


def _transcript(lines: list[dict]) -> str:
    if not lines:
        items = '<p class="empty">No transcript.</p>'
    else:
        items = "<ol class=\"transcript\">\n" + "\n".join(
            f'<li class="{escape(x["speaker"])}"><time datetime="PT{x["start"]:.2f}S">{clock(x["start"])}</time>'
            f'<span class="who party-{escape(x["speaker"])}">{escape(x["speaker"].capitalize())}</span>'
            f'<span class="text">{escape(x["text"].strip())}</span></li>' for x in lines) + "\n</ol>"
    return f'<section class="transcript">\n<h2>Transcript</h2>\n{items}\n</section>'


# --- plots ------------------------------------------------------------------------------------------

def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


class _Axis:
    """Audio time to SVG x over the plot's width."""

    def __init__(self, duration: float):
        self.duration = duration
        self.width = W - LEFT - RIGHT

    def x(self, t: float) -> float:
        return LEFT + self.width * min(max(t, 0.0), self.duration) / self.duration

    def ticks(self, top: float, bottom: float) -> str:
        step = next((s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800) if self.duration / s <= 10), 3600)
        out = []
        for k in range(int(self.duration // step) + 1):
            x = self.x(k * step)
            out.append(f'<line class="grid" x1="{_fmt(x)}" y1="{_fmt(top)}" x2="{_fmt(x)}" y2="{_fmt(bottom)}"/>'
                       f'<text x="{_fmt(x)}" y="{_fmt(bottom + 14)}" text-anchor="middle">{clock(k * step)}</text>')
        return "".join(out)


def _level(value) -> float:
    return FLOOR_DBFS if value is None or not math.isfinite(value) else min(0.0, max(FLOOR_DBFS, value))


def _level_paths(events: list, axis: _Axis, y) -> str:
    """Each party's level reduced to the loudest value per pixel column (the envelope): faint throughout,
    solid while they talk, so bleed and room noise stay in the background."""
    out = []
    for party in PARTIES:
        columns: dict[int, list] = {}
        for e in events:
            if e.type == "levels" and party in (e.levels or {}):
                col, db, talking = int(axis.x(e.t)), _level(e.levels[party]), bool((e.talking or {}).get(party))
                if col not in columns:
                    columns[col] = [axis.x(e.t), db, talking]
                else:
                    columns[col][1] = max(columns[col][1], db)
                    columns[col][2] = columns[col][2] or talking
        points = [columns[c] for c in sorted(columns)]
        if not points:
            continue
        out.append(f'<polyline class="level quiet {party}" points="{_points(points, y)}"/>')
        for lo, hi in _runs([p[2] for p in points]):
            out.append(f'<polyline class="level {party}" points="{_points(points[max(lo - 1, 0):hi + 1], y)}"/>')
    return "".join(out)


def _points(points: list, y) -> str:
    return " ".join(f"{_fmt(x)},{_fmt(y(db))}" for x, db, _ in points)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last + 1) index of each run of true flags."""
    runs, start = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _cue_lanes(cues: list, axis: _Axis) -> list[tuple[str, str, list[list]]]:
    """(kind, its text, groups) per cue kind in order of first appearance; a group is a run of that kind's cues
    closer than CUE_GROUP to the one before, drawn as one mark with a count, so a long call's many cues
    stay countable instead of a cascade of labels."""
    lanes: dict[str, list] = {}
    for cue in sorted(cues, key=lambda c: c.t):
        lanes.setdefault(cue.kind, []).append(cue)
    out = []
    for kind, members in lanes.items():
        texts: dict[str, int] = {}
        for c in members:
            texts[c.text] = texts.get(c.text, 0) + 1
        groups: list[list] = []
        for c in members:
            if groups and axis.x(c.t) - axis.x(groups[-1][-1].t) < CUE_GROUP:
                groups[-1].append(c)
            else:
                groups.append([c])
        out.append((kind, max(texts, key=texts.get), groups))
    return out


def _cue_lane_svg(kind: str, text: str, groups: list[list], row_top: float, bottom: float, axis: _Axis,
                  guides: bool) -> str:
    """One cue kind's lane: its name and count, each cue as a tick (with its time and reason) inside its
    group's mark, and with `guides` a faint line from each group down through the plot (left out for a long
    call's hundreds of groups, which would bury the loudness)."""
    n = sum(len(g) for g in groups)
    mark_y = row_top + CUE_LANE - 8
    parts = [f'<rect class="cue-lane" x="{LEFT}" y="{_fmt(row_top)}" width="{W - LEFT - RIGHT}" height="{CUE_LANE - 2}"/>',
             f'<text class="cue-lane-name" x="{LEFT + 4}" y="{_fmt(row_top + 10)}">{escape(text)}'
             f'{escape(f"  ({n})") if n > 1 else ""}</text>']
    for group in groups:
        x = axis.x(group[0].t)
        x_end = axis.x(group[-1].t)
        when = clock(group[0].t) if len(group) == 1 else f"{clock(group[0].t)}-{clock(group[-1].t)}"
        parts.append(f'<g class="cue-group" data-kind="{escape(kind)}" data-count="{len(group)}">'
                     f'<title>{escape(f"{when} {text} x{len(group)}" if len(group) > 1 else f"{when} {text}")}</title>')
        if guides:
            parts.append(f'<line class="cue-guide" x1="{_fmt(x)}" y1="{_fmt(mark_y + 4)}" x2="{_fmt(x)}" '
                         f'y2="{_fmt(bottom)}"/>')
        if len(group) > 1:
            parts.append(f'<rect x="{_fmt(x - 1)}" y="{_fmt(mark_y - 4)}" width="{_fmt(max(x_end - x, 0) + 2)}" '
                         f'height="8" rx="4" fill="var(--cue)" opacity="0.25"/>'
                         f'<text x="{_fmt(x_end + 6)}" y="{_fmt(mark_y + 3)}">{len(group)}</text>')
        for cue in group:
            cx = axis.x(cue.t)
            parts.append(f'<g class="cue-marker" data-t="{cue.t:.3f}" data-kind="{escape(cue.kind)}">'
                         f'<title>{escape(f"{clock(cue.t)} {cue.text}: {cue.reason}")}</title>'
                         f'<line x1="{_fmt(cx)}" y1="{_fmt(mark_y - 4)}" x2="{_fmt(cx)}" y2="{_fmt(mark_y + 4)}"/></g>')
        parts.append("</g>")
    return "".join(parts)


def _loudness_plot(events: list, duration: float) -> str:
    axis = _Axis(duration)
    lanes_of_cues = _cue_lanes([e for e in events if e.type == "cue"], axis)
    strip = max(CUE_LANE * len(lanes_of_cues) + 6, 16)
    top, height = strip + 8, 170
    bottom = top + height
    lanes = {"agent": bottom + 10, "customer": bottom + 28}
    lane_h = 12
    end = lanes["customer"] + lane_h
    total_h = end + 22

    def y(db: float) -> float:
        return top + height * (0.0 - db) / (0.0 - FLOOR_DBFS)

    parts = [f'<svg class="loudness" viewBox="0 0 {W} {total_h}" role="img" '
             f'aria-label="Loudness of both parties over the call, with turns, overlaps, interruptions and cues">']
    for db in range(0, int(FLOOR_DBFS) - 1, -10):
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{_fmt(y(db))}" x2="{W - RIGHT}" y2="{_fmt(y(db))}"/>'
                     f'<text x="{LEFT - 6}" y="{_fmt(y(db) + 4)}" text-anchor="end">{db}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{_fmt(top - 10)}" text-anchor="end">dBFS</text>')
    parts.append(axis.ticks(top, end))
    for o in (e for e in events if e.type == "overlap"):
        x0, x1 = axis.x(o.t), axis.x(o.end)
        note = f"both talking {clock(o.t)}-{clock(o.end)}, {o.by} started second"
        parts.append(f'<rect class="overlap-band" x="{_fmt(x0)}" y="{_fmt(top)}" width="{_fmt(max(x1 - x0, 1.0))}" '
                     f'height="{_fmt(end - top)}"><title>{escape(note)}</title></rect>')
    for party, lane in lanes.items():
        parts.append(f'<text class="lane-name {party}" x="{LEFT - 6}" y="{lane + lane_h - 2}" '
                     f'text-anchor="end">{party}</text>'
                     f'<line class="axis" x1="{LEFT}" y1="{lane + lane_h / 2}" x2="{W - RIGHT}" '
                     f'y2="{lane + lane_h / 2}"/>')
        for e in events:
            if e.type == "talk_end" and e.party == party:
                x0, x1 = axis.x(e.start), axis.x(e.t)
                parts.append(f'<rect class="spurt {party}" x="{_fmt(x0)}" y="{lane}" width="{_fmt(max(x1 - x0, 1.0))}" '
                             f'height="{lane_h}" rx="3"><title>{party} {clock(e.start)}-{clock(e.t)}</title></rect>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{_fmt(bottom)}" x2="{W - RIGHT}" y2="{_fmt(bottom)}"/>')
    parts.append(_level_paths(events, axis, y))
    overlaps = [e for e in events if e.type == "overlap"]
    for i in (e for e in events if e.type == "interruption"):
        x, lane = axis.x(i.t), lanes.get(i.by, lanes["agent"])
        parts.append(f'<g class="interruption-marker" data-t="{i.t:.3f}" data-by="{escape(i.by)}">'
                     f'<title>{escape(f"{clock(i.t)} {i.by} interrupted ({interruption_overlap(i, overlaps):.1f} s overlap)")}</title>'
                     f'<line x1="{_fmt(x)}" y1="{_fmt(top)}" x2="{_fmt(x)}" y2="{_fmt(lane + lane_h)}"/>'
                     f'<path d="M{_fmt(x - 5)},{_fmt(top - 1)} L{_fmt(x + 5)},{_fmt(top - 1)} '
                     f'L{_fmt(x)},{_fmt(top + 8)} Z"/>'
                     "</g>")
    guides = sum(len(groups) for _, _, groups in lanes_of_cues) <= CUE_GUIDES
    for row, (kind, text, groups) in enumerate(lanes_of_cues):
        parts.append(_cue_lane_svg(kind, text, groups, 2 + row * CUE_LANE, bottom, axis, guides))
    parts.append("</svg>")
    return "".join(parts)


def _moments(events: list) -> str:
    rows = []
    overlaps = [e for e in events if e.type == "overlap"]
    for e in sorted((e for e in events if e.type in ("cue", "interruption")), key=lambda e: e.t):
        if e.type == "cue":
            rows.append(f'<tr><td>{clock(e.t)}</td><td class="kind">{escape(e.text)}</td>'
                        f'<td class="reason">{escape(e.reason)}</td></tr>')
        else:
            rows.append(f'<tr><td>{clock(e.t)}</td><td class="kind cut">{escape(e.by.capitalize())} interrupted</td>'
                        f'<td class="reason">{interruption_overlap(e, overlaps):.1f} s of overlap</td></tr>')
    if not rows:
        return '<p class="note">No cues and no interruptions.</p>'
    return f'<table class="moments"><tbody>{"".join(rows)}</tbody></table>'


LEGEND = ('<ul class="legend"><li><span class="swatch agent"></span>agent</li>'
          '<li><span class="swatch customer"></span>customer</li>'
          '<li><span class="swatch overlap"></span>both talking</li>'
          '<li><span class="swatch cut"></span>interruption</li>'
          '<li><span class="swatch cue"></span>cue shown to the agent</li></ul>')


def _loudness_section(events: list, duration: float) -> str:
    return ('<section class="plot loudness">\n<h2>Loudness and turns</h2>\n'
            f"{_loudness_plot(events, duration)}\n{LEGEND}\n{_moments(events)}\n</section>")


def _pace_section(events: list, duration: float, fast_wpm: float, window_s: float) -> str:
    paces = [e for e in events if e.type == "pace"]
    if not paces:
        return ('<section class="plot pace">\n<h2>Pace</h2>\n'
                '<p class="empty">No pace measured (no transcript).</p>\n</section>')
    axis = _Axis(duration)
    values = [v for e in paces for v in (e.wpm or {}).values() if v is not None and math.isfinite(v)]
    top_wpm = max(50.0 * math.ceil(max(values + [fast_wpm + 20]) / 50.0), 100.0)
    top, height = 22, 120
    bottom = top + height

    def y(w: float) -> float:
        return top + height * (1.0 - min(w, top_wpm) / top_wpm)

    parts = [f'<svg class="pace" viewBox="0 0 {W} {bottom + 24}" role="img" '
             'aria-label="Pace of both parties over the call">']
    for w in range(0, int(top_wpm) + 1, 50):
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{_fmt(y(w))}" x2="{W - RIGHT}" y2="{_fmt(y(w))}"/>'
                     f'<text x="{LEFT - 6}" y="{_fmt(y(w) + 4)}" text-anchor="end">{w}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{top - 10}" text-anchor="end">wpm</text>')
    parts.append(axis.ticks(top, bottom))
    parts.append(f'<line class="fast" x1="{LEFT}" y1="{_fmt(y(fast_wpm))}" x2="{W - RIGHT}" y2="{_fmt(y(fast_wpm))}">'
                 f"<title>fast: {fast_wpm:.0f} words per minute</title></line>"
                 f'<text x="{LEFT + 4}" y="{_fmt(y(fast_wpm) - 4)}">fast</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{_fmt(bottom)}" x2="{W - RIGHT}" y2="{_fmt(bottom)}"/>')
    for party in PARTIES:
        runs, run = [], []
        for e in paces:
            v = (e.wpm or {}).get(party)
            if v is None or not math.isfinite(v):
                if run:
                    runs.append(run)
                run = []
            else:
                run.append((axis.x(e.t), v))
        if run:
            runs.append(run)
        for run in runs:
            pts = " ".join(f"{_fmt(x)},{_fmt(y(v))}" for x, v in run)
            if len(run) > 1:
                parts.append(f'<polyline class="pace-line {party}" points="{pts}"/>')
            parts.extend(f'<circle class="pace-dot {party}" cx="{_fmt(x)}" cy="{_fmt(y(v))}" r="2.6">'
                         f"<title>{party} {v:.0f} wpm</title></circle>" for x, v in run)
    parts.append("</svg>")
    aside = f"words per minute over each party's last {window_s:.0f} s of talk"
    return (f'<section class="plot pace">\n<h2>Pace<span class="aside">{escape(aside)}</span></h2>\n'
            f'{"".join(parts)}\n</section>')
