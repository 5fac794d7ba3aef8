"""The HTML call report: a synthesized call rendered, parsed, checked for self-containment and loaded in chromium."""

from html.parser import HTMLParser

import pytest

from conftest import ARTIFACTS
from monitor.analysis.pipeline import run_channels
from monitor.library.report import build_report
from monitor.library.report_html import render_report
from monitor.library.scorecard import ITEMS, events_from_dicts
from synth import Turn, synth_call, turns_in_sequence

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CALL = {"id": "call-0042", "agent": "Sam <Lee> & co", "started_at": 1767261600.0, "source": "synth.wav"}


class Page(HTMLParser):
    """Collects every element's attributes and checks that each opened element is closed in order."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.elements if name in a.get("class", "").split()]


@pytest.fixture(scope="module")
def rendered():
    """A customer complaint the agent talks over and answers with "calm down", then an apology and thanks."""
    greet, complaint = turns_in_sequence(
        ("agent", "Thank you for calling, how can I help you today?"),
        ("customer", "I have been charged twice for the same order and nobody has fixed it, "
                     "this is the third time I am calling and I am really fed up with it."))
    barge = Turn("agent", complaint.start + 3.0, "Please calm down, there is nothing I can do about the bank.")
    rest = turns_in_sequence(
        ("agent", "I am sorry, let me refund the second charge today. Does that sound good?"),
        ("customer", "Okay, thank you."),
        ("agent", "Thank you for your patience, goodbye."), first=max(complaint.end, barge.end) + 0.8)
    events = [e.to_dict() for e in run_channels(synth_call([greet, complaint, barge, *rest], bleed_db=-28,
                                                           noise_dbfs=-60))]
    html = render_report(CALL, events)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-call.html").write_text(html)
    return events, html


def of(events, kind):
    return [e for e in events if e["type"] == kind]


def test_cue_and_interruption_markers_carry_their_kind_and_time(rendered):
    events, html = rendered
    page = Page(html)
    cues = of(events, "cue")
    assert "wait_for_pause" in {c["kind"] for c in cues} and "own_the_problem" in {c["kind"] for c in cues}
    markers = page.with_class("cue-marker")
    assert len(page.with_class("cue-guide")) == len(page.with_class("cue-group")) >= 2  # a short call: guides
    assert [(m["data-kind"], float(m["data-t"])) for m in markers] == \
        [(c["kind"], pytest.approx(c["t"], abs=1e-3)) for c in sorted(cues, key=lambda c: c["t"])]
    cuts = page.with_class("interruption-marker")
    assert [float(m["data-t"]) for m in cuts] == [pytest.approx(i["t"], abs=1e-3) for i in of(events, "interruption")]
    assert [m["data-by"] for m in cuts] == ["agent"]
    assert len(page.with_class("spurt")) == len(of(events, "talk_end"))
    assert len(page.with_class("overlap-band")) == len(of(events, "overlap")) >= 1
    for cue in cues:
        assert cue["text"] in "".join(page.text)


def test_the_page_shows_the_header_figures_transcript_and_scorecard(rendered):
    events, html = rendered
    page = Page(html)
    text = " ".join(" ".join(page.text).split())
    assert "call-0042" in text and "Sam <Lee> & co" in text and "synth.wav" in text
    assert "Sam &lt;Lee&gt; &amp; co" in html
    report = build_report(events_from_dicts(events))
    for party, figures in report["parties"].items():
        assert f"{figures['talk_s']:.1f} s" in text
        assert f"{figures['loudness_dbfs']:.1f} dBFS" in text
    lines = report["transcript"]
    assert len(lines) >= 5 and len(page.with_class("transcript")) == 2  # the section and its list
    items = [a for tag, a in page.elements if tag == "li" and a.get("class") in ("agent", "customer")]
    assert [a["class"] for a in items] == [x["speaker"] for x in lines]
    for line in lines:
        assert " ".join(line["text"].split()) in text
    rows = [a for tag, a in page.elements if tag == "tr" and "data-item" in a]
    assert [r["data-item"] for r in rows] == [key for key, _ in ITEMS]
    met = {r["data-item"]: r["data-met"] for r in rows}
    assert met["listen"] == "false" and met["thank"] == "true" and met["empathize"] == "true"
    for _, title in ITEMS:
        assert title in text


def test_the_page_is_self_contained(rendered):
    _, html = rendered
    page = Page(html)
    assert page.stack == []
    low = html.lower()
    for bad in ('src="http', "src='http", 'href="http', "href='http", "<script", "@import", "url(", "<link"):
        assert bad not in low, bad
    assert {a.get("class") for t, a in page.elements if t == "svg"} >= {"loudness", "pace"}
    assert html.startswith("<!DOCTYPE html>")


def test_text_from_the_call_is_escaped():
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": "<b>id</b>", "source": "a\"b", "parties": [],
               "started_at": 0.0},
              {"v": 1, "type": "transcript", "t": 2.0, "party": "customer", "start": 0.5, "end": 1.5,
               "text": "<script>alert(1)</script> & more", "final": True, "words": []},
              {"v": 1, "type": "cue", "t": 1.0, "kind": "x\"><b>", "text": "<i>cue</i>", "reason": "<r>"},
              {"v": 1, "type": "call_end", "t": 3.0, "parties": {}}]
    html = render_report({}, events)
    assert "<script" not in html and "<b>" not in html and "<i>cue" not in html and "<r>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    page = Page(html)
    assert page.stack == []
    (marker,) = page.with_class("cue-marker")
    assert marker["data-kind"] == "x\"><b>" and float(marker["data-t"]) == 1.0


def test_an_empty_call_still_renders():
    page = Page(render_report({"id": "empty"}, []))
    text = " ".join(page.text)
    assert "No transcript." in text and "0 of 9 met" in text
    assert page.with_class("cue-marker") == []


def test_chromium_renders_the_markers_and_fetches_nothing(rendered, browser):
    events, html = rendered
    path = ARTIFACTS / "report-call.html"
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(path.as_uri())
        assert page.locator(".cue-marker").count() == len(of(events, "cue"))
        assert page.locator(".interruption-marker").count() == len(of(events, "interruption"))
        assert page.locator("section.scorecard tbody tr").count() == 9
        box = page.locator("svg.loudness").bounding_box()
        assert box and box["width"] > 600 and box["height"] > 150
        page.screenshot(path=str(ARTIFACTS / "report-call.png"), full_page=True)
        page.emulate_media(media="print")
        page.screenshot(path=str(ARTIFACTS / "report-call-print.png"), full_page=True)
    finally:
        page.close()
    assert requests == [path.as_uri()]


@pytest.fixture(scope="module")
def hour_call():
    """An hour of a call as a monitor records it (bench/replay_open.py): hundreds of cues of five kinds."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from replay_open import long_call_events

    events = long_call_events("hour", 60.0)
    html = render_report({"id": "hour"}, events)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-hour.html").write_text(html)
    return events, html


def test_a_long_calls_cues_get_a_lane_per_kind_and_groups(hour_call):
    events, html = hour_call
    page = Page(html)
    cues = of(events, "cue")
    kinds = list(dict.fromkeys(c["kind"] for c in sorted(cues, key=lambda c: c["t"])))
    assert len(cues) > 250 and len(kinds) == 5
    assert len(page.with_class("cue-lane")) == len(kinds)  # one lane per kind, not a row per overlapping label
    names = [a for a in page.with_class("cue-lane-name")]
    assert len(names) == len(kinds)
    groups = page.with_class("cue-group")
    assert [g["data-kind"] for g in groups] == sorted((g["data-kind"] for g in groups), key=kinds.index)
    assert sum(int(g["data-count"]) for g in groups) == len(cues) > len(groups)  # close cues share a mark
    assert len(page.with_class("cue-marker")) == len(cues)
    assert page.with_class("cue-guide") == []  # hundreds of lines down the plot would bury the loudness
    for kind in kinds:  # each kind's cues are grouped in time order and their count is shown once
        count = sum(1 for c in cues if c["kind"] == kind)
        text = next(c["text"] for c in cues if c["kind"] == kind)
        assert f"{text}  ({count})" in "".join(page.text)
    svg = html.split('<svg class="loudness"', 1)[1].split(">", 1)[0]
    height = float(svg.split('viewBox="0 0 960 ', 1)[1].split('"', 1)[0])
    assert height < 26 * len(kinds) + 260  # the plot keeps its place under the lanes, however many cues


def test_chromium_shows_the_lanes_without_overlapping_names(hour_call, browser):
    _, html = hour_call
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto((ARTIFACTS / "report-hour.html").as_uri())
        boxes = [page.locator(".cue-lane-name").nth(i).bounding_box()
                 for i in range(page.locator(".cue-lane-name").count())]
        for a, b in zip(boxes, boxes[1:]):
            assert a["y"] + a["height"] <= b["y"] + 0.5  # each name on its own line
        plot = page.locator("svg.loudness").bounding_box()
        assert plot["height"] < 0.6 * plot["width"]
        page.screenshot(path=str(ARTIFACTS / "report-hour.png"), full_page=False)
    finally:
        page.close()
