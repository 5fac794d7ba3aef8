"""The call report: built from the event stream alone, so a live call, a file and a replay agree."""

from __future__ import annotations

from .. import PARTIES
from ..analysis.sentiment import quarters
from ..events import CallEnd, Cue, Event, Interruption, Overlap, TalkEnd, Transcript


def build_report(events: list[Event]) -> dict:
    end = next((e for e in reversed(events) if isinstance(e, CallEnd)), None)
    duration = end.t if end else max((e.t for e in events), default=0.0)
    talk = {p: 0.0 for p in PARTIES}
    for e in events:
        if isinstance(e, TalkEnd):
            talk[e.party] += e.t - e.start
    overlaps = [e for e in events if isinstance(e, Overlap)]
    interruptions = [e for e in events if isinstance(e, Interruption)]

    totals = end.parties if end else {}
    parties = {
        p: {
            "talk_s": round(talk[p], 2),
            "loudness_dbfs": _round(totals.get(p, {}).get("talk_level_dbfs")),
            "wpm": _round(totals.get(p, {}).get("wpm"), 0),
            "interruptions": sum(1 for i in interruptions if i.by == p),
        }
        for p in PARTIES
    }
    return {
        "duration_s": round(duration, 2),
        "parties": parties,
        "interruptions": [{"t": round(i.t, 2), "by": i.by, "overlap_s": round(interruption_overlap(i, overlaps), 2)}
                          for i in interruptions],
        "overlaps": [{"start": round(o.t, 2), "end": round(o.end, 2), "by": o.by} for o in overlaps],
        "cues": [{"t": round(c.t, 2), "kind": c.kind, "text": c.text} for c in events if isinstance(c, Cue)],
        "transcript": [{"speaker": e.party, "start": round(e.start, 2), "end": round(e.end, 2), "text": e.text}
                       for e in final_lines(events)],
        "sentiment": {"customer": quarters(events, duration)},  # per quarter of the call, each in [-1, 1]
    }


def interruption_overlap(interruption: Interruption, overlaps: list[Overlap]) -> float:
    """How long both talked in an interruption: the whole overlap it began (from its `t` to that overlap's
    `end`), not the part seen when it was decided; its own `overlap_s` only while that overlap has not
    ended (a call cut off mid-overlap). The one definition the CLI, JSON, replay and report all show
    (docs/protocol.md)."""
    match = next((o for o in overlaps if abs(o.t - interruption.t) < 1e-6 and o.by == interruption.by), None)
    if match is None:
        match = next((o for o in overlaps if abs(o.t - interruption.t) < 1e-6), None)
    return match.end - match.t if match else interruption.overlap_s


def final_lines(events: list[Event]) -> list[Transcript]:
    """The final transcript, in time order: a final replaces the same party's earlier finals it covers."""
    kept: dict[str, list[tuple[int, Transcript]]] = {}  # per party, by start: a final drops the tail it covers
    for seq, e in enumerate(events):
        if isinstance(e, Transcript) and e.final:
            mine = kept.setdefault(e.party, [])
            while mine and mine[-1][1].start >= e.start:
                mine.pop()
            mine.append((seq, e))
    return [e for _, e in sorted((x for mine in kept.values() for x in mine), key=lambda x: (x[1].start, x[0]))]


def _round(value, digits=1):
    return None if value is None else round(value, digits)


def _clock(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}"


def format_summary(report: dict) -> str:
    """The report as a few readable lines for a terminal."""
    lines = [f"Call of {_clock(report['duration_s'])} (m:ss)"]
    total = sum(p["talk_s"] for p in report["parties"].values()) or 1.0
    for name, p in report["parties"].items():
        loud = "-" if p["loudness_dbfs"] is None else f"{p['loudness_dbfs']:.1f} dBFS"
        wpm = "" if p["wpm"] is None else f", {p['wpm']:.0f} wpm"
        lines.append(f"  {name:<9} talked {p['talk_s']:6.1f} s ({100 * p['talk_s'] / total:3.0f}%), "
                     f"loudness {loud}{wpm}, interruptions {p['interruptions']}")
    quarters = report.get("sentiment", {}).get("customer")
    if quarters:
        lines.append("Customer sentiment by quarter (-1 upset .. +1 pleased): "
                     + "  ".join(f"{q:+.2f}" for q in quarters))
    lines.append(f"Overlaps: {len(report['overlaps'])}")
    for i in report["interruptions"]:
        lines.append(f"  {_clock(i['t'])}  {i['by']} interrupted ({i['overlap_s']:.1f} s overlap)")
    lines.append(f"Cues: {len(report['cues'])}" if report["cues"] else "Cues: none")
    for c in report["cues"]:
        lines.append(f"  {_clock(c['t'])}  {c['text']}")
    for line in report["transcript"]:
        lines.append(f"  {_clock(line['start'])}  {line['speaker']}: {line['text']}")
    return "\n".join(lines)
