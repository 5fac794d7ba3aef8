"""ui/ shares one palette (common.css) and one event reducer (calmline.js); cues carry their rank, so no
page keeps a list of cue kinds. Static checks of the files, then the reducer itself in real chromium."""

from __future__ import annotations

import functools
import re
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tinycss2

from monitor.analysis.cues import PRIORITY, RANKS, TEXTS
from monitor.analysis.pipeline import run_channels
from synth import barge_in_call

from conftest import ROOT

UI = ROOT / "ui"
PAGES = ["overlay.html", "floor.html", "login.html", "replay.html"]
PAGE_CSS = sorted(p for p in UI.glob("*.css") if p.name != "common.css")
PAGE_JS = sorted(p for p in UI.glob("*.js") if p.name not in ("calmline.js", "overlay_notes.js", "overlay_sentiment.js"))
"""Pages' own scripts (overlay_notes.js and overlay_sentiment.js add parts to the overlay: no page)."""
COLOUR_FUNCTIONS = {"rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color", "color-mix"}
NAMED_COLOURS = {"white", "black", "red", "green", "blue", "yellow", "orange", "purple", "gray", "grey", "silver",
                 "maroon", "navy", "teal", "olive", "lime", "aqua", "fuchsia", "pink", "brown", "gold"}


# ---- the rank in the protocol -----------------------------------------------------------------------

def test_every_cue_kind_has_a_rank_higher_for_more_urgent():
    assert set(RANKS) == set(TEXTS) == set(PRIORITY)
    assert sorted(RANKS.values()) == list(range(1, len(PRIORITY) + 1))
    assert sorted(RANKS, key=RANKS.get, reverse=True) == PRIORITY


def test_cues_from_the_pipeline_carry_their_rank_on_the_wire():
    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks, it is not okay.")
    cues = [e.to_dict() for e in run_channels(channels, transcribe=False) if e.type == "cue"]
    assert cues, "the barge-in should make a wait_for_pause cue"
    for cue in cues:
        assert cue["rank"] == RANKS[cue["kind"]]


# ---- static checks of the files ---------------------------------------------------------------------

class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sheets: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "stylesheet":
            self.sheets.append(a["href"])
        elif tag == "script":
            self.scripts.append(a.get("src", ""))


def assets(page: str) -> _Assets:
    parser = _Assets()
    parser.feed((UI / page).read_text())
    return parser


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_the_shared_files_first_by_absolute_ui_paths(page):
    found = assets(page)
    assert found.sheets[0] == "/ui/common.css", found.sheets
    assert len(found.sheets) == 2 and found.sheets[1].startswith("/ui/")
    if page != "login.html":  # the login form has no script
        assert found.scripts[0] == "/ui/calmline.js", found.scripts
        # The overlay's parts: the customer's sentiment (before overlay.js: it listens to the stream overlay.js
        # opens), supervisors' notes and the self-view.
        extra = ["/ui/overlay_sentiment.js", "/ui/overlay_notes.js"] if page == "overlay.html" else []
        own = [s for s in found.scripts[1:] if s not in extra]
        assert len(own) == 1 and own[0].startswith("/ui/"), found.scripts
        assert [s for s in found.scripts if s in extra] == extra, found.scripts
    for url in found.sheets + found.scripts:
        assert (UI / url.removeprefix("/ui/")).is_file(), url


@pytest.mark.parametrize("script", [p.name for p in sorted(UI.glob("*.js"))])
def test_no_script_keeps_a_list_of_cue_kinds(script):
    source = (UI / script).read_text()
    named = [kind for kind in PRIORITY if re.search(rf"""["'`]{kind}["'`]""", source)]
    assert not named, f"{script} names cue kinds {named}: the page should use each cue's rank"
    assert "PRIORITY" not in source


@pytest.mark.parametrize("script", [p.name for p in PAGE_JS])
def test_pages_fold_events_with_the_shared_reducer_only(script):
    source = (UI / script).read_text()
    assert "Calmline.reduce(" in source
    for own_reducer in ("final === false", ".finals", "cues.set(", "talk[ev.party]"):
        assert own_reducer not in source, f"{script} folds events itself ({own_reducer!r})"


def declarations(path: Path):
    """(selector, property, value tokens) for every declaration of a stylesheet."""
    rules = tinycss2.parse_stylesheet(path.read_text(), skip_comments=True, skip_whitespace=True)
    for rule in rules:
        if rule.type == "error":
            raise AssertionError(f"{path.name}: {rule.message}")
        if rule.type != "qualified-rule":
            continue
        selector = tinycss2.serialize(rule.prelude).strip()
        for decl in tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True):
            if decl.type == "error":
                raise AssertionError(f"{path.name} {selector}: {decl.message}")
            if decl.type == "declaration":
                yield selector, decl.lower_name, decl.value


def walk(tokens):
    """Every token, with those inside functions and brackets."""
    for token in tokens:
        yield token
        if token.type == "function":
            yield from walk(token.arguments)
        elif token.type in ("() block", "[] block", "{} block"):
            yield from walk(token.content)


def colour_literals(tokens) -> list[str]:
    found = []
    for token in walk(tokens):
        if token.type == "hash":
            found.append("#" + token.value)
        elif token.type == "function" and token.lower_name in COLOUR_FUNCTIONS:
            found.append(token.lower_name + "()")
        elif token.type == "ident" and token.lower_value in NAMED_COLOURS:
            found.append(token.value)
    return found


def var_names(tokens) -> set[str]:
    return {next(a.value for a in token.arguments if a.type == "ident")
            for token in walk(tokens) if token.type == "function" and token.lower_name == "var"}


def test_the_colour_checker_sees_literals():
    css = "a { color: #fff; background: rgb(1 2 3); border: 1px solid red; outline: var(--x, #000); }"
    decls = [d for d in tinycss2.parse_blocks_contents(tinycss2.parse_stylesheet(css)[0].content) if d.type == "declaration"]
    assert [colour_literals(d.value) for d in decls] == [["#fff"], ["rgb()"], ["red"], ["#000"]]


def palette() -> list[str]:
    return [prop for selector, prop, _ in declarations(UI / "common.css") if selector == ":root"]


def test_common_css_holds_the_palette_and_each_cue_colour():
    names = palette()
    assert {"--bg", "--panel", "--text", "--muted", "--agent", "--customer", "--cue"} <= set(names)
    assert len(set(names)) == len(names), "each colour is defined once"
    kinds = {kind for selector, prop, _ in declarations(UI / "common.css") if prop == "--cue"
             for kind in re.findall(r'\[data-kind="(\w+)"\]', selector)}
    assert kinds == set(PRIORITY), "every cue kind has its colour in common.css"


@pytest.mark.parametrize("sheet", [p.name for p in PAGE_CSS])
def test_page_stylesheets_take_every_colour_from_the_palette(sheet):
    shared = {prop for _, prop, _ in declarations(UI / "common.css") if prop.startswith("--")}
    own = {prop for _, prop, _ in declarations(UI / sheet) if prop.startswith("--")}
    for selector, prop, value in declarations(UI / sheet):
        literals = colour_literals(value)
        assert not literals, f"{sheet} {selector} {{ {prop} }} has colour {literals}: use a var(--...) of common.css"
        unknown = var_names(value) - shared - own
        assert not unknown, f"{sheet} {selector} {{ {prop} }} uses undefined {unknown}"
    assert not own & set(palette()), f"{sheet} redefines palette colours {own & set(palette())}"


@pytest.mark.parametrize("script", [p.name for p in sorted(UI.glob("*.js"))])
def test_scripts_draw_in_the_palette_too(script):
    hexes = re.findall(r"""["'`]#[0-9a-fA-F]{3,8}["'`]""", (UI / script).read_text())
    assert not hexes, f"{script} has colour literals {hexes}: read them from common.css"


# ---- the reducer in chromium ------------------------------------------------------------------------

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """ui/ at /ui/ over a real local HTTP server, as the web app serves it (and nothing else of the repo)."""
    root = tmp_path_factory.mktemp("served")
    (root / "ui").symlink_to(UI)
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 800, "height": 600})
    errors = []
    context.on("weberror", lambda error: errors.append(error.error))
    yield context
    context.close()
    assert not errors, errors


@pytest.fixture
def page(context, ui_server):
    page = context.new_page()
    page.goto(ui_server + "/ui/")  # an empty page of the ui/ origin (its listing)
    page.add_script_tag(url=ui_server + "/ui/calmline.js")
    return page


BG = "rgb(20, 24, 29)"  # common.css --bg


@pytest.mark.parametrize("name", PAGES)
def test_each_page_gets_its_files_and_the_palette(context, ui_server, name):
    page = context.new_page()
    missing = []
    asset = re.compile(r"/ui/[\w.-]+\.(css|js)$")  # the page's data (replay's data.json, audio) is not served here
    page.on("response", lambda r: asset.search(r.url) and r.status != 200 and missing.append((r.url, r.status)))
    page.on("requestfailed", lambda r: asset.search(r.url) and missing.append((r.url, r.failure)))
    page.goto(f"{ui_server}/ui/{name}", wait_until="load")
    assert not missing, missing
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == BG
    assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily")
    if name != "login.html":
        assert page.evaluate("typeof Calmline.reduce") == "function"
        meter = page.locator(".meter").first
        assert meter.evaluate("(el) => getComputedStyle(el).backgroundColor") == "rgb(38, 46, 54)"  # --track


def test_the_pop_out_window_gets_both_stylesheets(context, ui_server):
    page = context.new_page()
    page.goto(f"{ui_server}/ui/overlay.html")
    if not page.evaluate("'documentPictureInPicture' in window"):
        pytest.skip("this chromium has no Document Picture-in-Picture")
    with context.expect_page() as popped:
        page.click("#popout")
    pip = popped.value
    pip.wait_for_function("document.styleSheets.length === 2 && [...document.styleSheets].every((s) => s.cssRules.length)")
    sheets = pip.evaluate("[...document.styleSheets].map((s) => new URL(s.href).pathname)")
    assert sheets == ["/ui/common.css", "/ui/overlay.css"]
    assert pip.evaluate("getComputedStyle(document.body).backgroundColor") == BG
    assert pip.locator("#cue-box").evaluate("(el) => getComputedStyle(el).height") == "64px"  # overlay.css


FOLD = """([events, lines, cueS]) => {
  const st = Calmline.state({ lines });
  return events.map(([ev, at, wall]) => {
    Calmline.reduce(st, ev, at ?? undefined);
    const cue = Calmline.currentCue(st, cueS, wall ?? undefined);
    return { now: st.now, cue: cue && cue.text, levels: { ...st.levels }, talking: { ...st.talking },
             wpm: { ...st.wpm }, share: Calmline.share(st), ended: st.ended,
             lines: Calmline.lines(st).map((l) => `${l.party}${l.final ? "" : "~"}: ${l.text}`) };
  });
}"""


def fold(page, events, lines: int = 3, cue_s: float = 8.0) -> list[dict]:
    """The state after each event, folded by calmline.js; an event may be (event, arrived_at, wall_now)."""
    steps = [e if isinstance(e, tuple) else (e, None, None) for e in events]
    return page.evaluate(FOLD, [steps, lines, cue_s])


def ev(type_: str, t: float, **fields) -> dict:
    return {"v": 1, "type": type_, "t": t, **fields}


def cue(t: float, kind: str, **fields) -> dict:
    return ev("cue", t, kind=kind, text=TEXTS.get(kind, kind), reason="test", rank=RANKS.get(kind), **fields)


def said(t: float, party: str, text, final: bool = True, start: float | None = None) -> dict:
    return ev("transcript", t, party=party, start=t - 1.0 if start is None else start, end=t, text=text, final=final)


def test_the_highest_ranked_cue_shows_and_a_lower_one_waits_behind_it(page):
    states = fold(page, [ev("call_start", 0.0, call_id="c1"), cue(1.0, "slow_down"), cue(2.0, "wait_for_pause"),
                         cue(3.0, "dead_air"), ev("levels", 9.5), ev("levels", 10.5), ev("levels", 11.5)])
    assert [s["cue"] for s in states] == [None, "Slow down", "Wait for the pause", "Wait for the pause",
                                          "Wait for the pause", "Keep them informed", None]


def test_the_rank_decides_not_the_kind(page):
    # A kind no page has heard of, ranked above all, wins; ranked cues beat cues without a rank.
    states = fold(page, [cue(1.0, "dead_air"), ev("cue", 1.5, kind="old", text="From before ranks"),
                         ev("cue", 2.0, kind="new_kind", text="Brand new", rank=99),
                         ev("cue", 2.5, kind="low", text="Low", rank=0.5)])
    assert [s["cue"] for s in states] == ["Keep them informed", "Keep them informed", "Brand new", "Brand new"]


def test_a_newer_cue_of_a_kind_restarts_its_time_and_a_live_page_ages_cues_on_its_clock(page):
    states = fold(page, [cue(1.0, "speak_softly"), cue(6.0, "speak_softly"), ev("levels", 10.0),
                         ev("levels", 14.5)])
    assert [s["cue"] for s in states] == ["Speak softly"] * 3 + [None]
    # No event for 9 s on the page's clock: the cue goes although audio time stood still.
    states = fold(page, [(cue(1.0, "acknowledge"), 100.0, 100.0), (ev("levels", 1.2), 100.2, 107.0),
                         (ev("levels", 1.4), 100.4, 109.0)])
    assert [s["cue"] for s in states] == ["Acknowledge how they feel"] * 2 + [None]


def test_transcript_finals_replace_interims_and_earlier_finals_of_the_phrase(page):
    states = fold(page, [
        said(2.0, "agent", "Hello, how can I help?"),
        said(4.0, "customer", "I have been", final=False, start=3.0),
        said(5.0, "customer", "I have been waiting", final=False, start=3.0),
        said(5.5, "customer", "I have been waiting.", start=3.0),
        said(7.0, "customer", "I have been waiting for an hour.", start=3.0),  # the phrase heard again, longer
        said(8.0, "customer", 42, final=False),                                # a bad text is no line
        said(9.0, "agent", "Sorry about that."),
        said(10.0, "agent", "Let me look."),
    ])
    assert [s["lines"] for s in states] == [
        ["agent: Hello, how can I help?"],
        ["agent: Hello, how can I help?", "customer~: I have been"],
        ["agent: Hello, how can I help?", "customer~: I have been waiting"],
        ["agent: Hello, how can I help?", "customer: I have been waiting."],
        ["agent: Hello, how can I help?", "customer: I have been waiting for an hour."],
        ["agent: Hello, how can I help?", "customer: I have been waiting for an hour."],
        ["agent: Hello, how can I help?", "customer: I have been waiting for an hour.", "agent: Sorry about that."],
        ["customer: I have been waiting for an hour.", "agent: Sorry about that.", "agent: Let me look."],
    ]
    assert fold(page, [said(2.0, "agent", "One."), said(3.0, "agent", "Two.")], lines=12)[-1]["lines"] == [
        "agent: One.", "agent: Two."]


def test_levels_talking_pace_and_share_follow_the_events(page):
    states = fold(page, [
        ev("call_start", 0.0),
        ev("levels", 0.2, levels={"agent": -21.4, "customer": -60.0}, talking={"agent": True, "customer": False}),
        ev("levels", 0.4, levels={"customer": -18.0}, talking={"agent": False, "customer": True}),
        ev("pace", 6.0, wpm={"agent": 151.4, "customer": None}),
        ev("talk_end", 6.0, party="agent", start=0.0),
        ev("talk_end", 10.0, party="customer", start=6.0),
        ev("talk_end", 11.0, party={"not": "a party"}, start=0.0),
        ev("call_end", 12.0, parties={}),
        ev("call_start", 0.0),
    ])
    assert states[1]["levels"] == {"agent": -21.4, "customer": -60.0}
    assert states[1]["talking"] == {"agent": True, "customer": False}
    assert states[2]["levels"] == {"agent": -21.4, "customer": -18.0}  # a party not in the event keeps its level
    assert states[2]["talking"] == {"agent": False, "customer": True}
    assert states[3]["wpm"] == {"agent": 151.4, "customer": None}
    assert states[4]["share"] == 1.0
    assert states[5]["share"] == pytest.approx(0.6) == states[6]["share"]
    assert states[7]["ended"] and states[7]["levels"] == {"agent": None, "customer": None}
    assert states[7]["now"] == 12.0
    assert states[8] == {"now": 0.0, "cue": None, "levels": {"agent": None, "customer": None},
                         "talking": {"agent": False, "customer": False}, "wpm": {"agent": None, "customer": None},
                         "share": None, "ended": False, "lines": []}


def test_formatting_and_final_lines(page):
    got = page.evaluate("""() => [
      Calmline.clock(7.77, { tenths: true }), Calmline.clock(65), Calmline.clock(65, { pad: true }),
      Calmline.clock(3725.4), Calmline.clock(-3), Calmline.percent(0.6), Calmline.percent(null),
      Calmline.wpm(151.4), Calmline.wpm(null), Calmline.db(-70), Calmline.db(3), Calmline.db(null), Calmline.db(-21.4),
    ]""")
    assert got == ["0:07.7", "1:05", "01:05", "1:02:05", "0:00", "60%", "–", "151", "–", -60, 0, -60, -21.4]
    lines = page.evaluate("(events) => Calmline.finalLines(events).map((l) => [l.party, l.start, l.text])", [
        said(3.0, "customer", "My order", start=2.0), said(2.5, "agent", "Hi."),
        said(4.0, "customer", "My order never arrived.", start=2.0), said(5.0, "customer", "  ", start=4.5),
        said(6.0, "agent", "Sorry", final=False), {"type": "transcript", "party": "nobody", "text": "x"}])
    assert lines == [["agent", 1.5, "Hi."], ["customer", 2.0, "My order never arrived."]]
