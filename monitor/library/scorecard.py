"""The de-escalation scorecard: the nine RESOLVED + thank-you items of CUES.md, read from a call's events.

Works on the events' JSON form (what the store gives back), so a live call, a file and a replay score
alike. Each item earns a credit of 0..1 from ALL of the call's evidence: what the agent said (timestamped
transcript lines), what was measured, and what the overlay cued. A cued behaviour counts against its item
every time it happened, each repeat costing less than the one before ([scorecard] repeat_exponent), so one
apology does not cancel three deflections and eighteen repeats weigh far more than one. The 0-100 score
is the credits weighted by [scorecard.weights]. Each item lists every occurrence behind its credit in a
coach's words with the times, which pages turn into links into the replay.

The scorecard's own phrase lists (below, and [scorecard] undo_words) are lower case and matched exactly as
whole words, punctuation ignored: they judge, so they must not guess. The cues' lists it shares (frustration
words, deflections) are matched as the live cues match them (`cues.find_phrase`), so card and overlay agree.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .. import PARTIES
from ..config import Config
from ..analysis.cues import find_phrase as cue_phrase
from ..events import Event, Transcript, events_from_dicts  # noqa: F401 (re-exported)
from .report import final_lines

EMPATHY = ["sorry", "apologize", "apologise", "apologies", "i understand", "understand how", "understand why",
           "i hear you", "i see why", "i can see why", "that must be", "frustrating for you", "i can imagine",
           "i know how", "that sounds frustrating", "i'd be frustrated", "i would be frustrated"]
ACTIONS = ["i will", "i'll", "let me", "i can send", "i can offer", "i can arrange", "i can refund",
           "i can replace", "i can get", "i can have", "i'm going to", "i am going to", "we will", "we'll",
           "i'd like to offer", "i would like to offer"]
OPEN_MIND = ["what would you like", "how can we make this right", "how can i make this right",
             "what would work for you", "what would work best", "what would you prefer", "would you prefer",
             "what would help", "what can i do to make", "how would you like", "what outcome"]
VERIFY = ["does that work for you", "does that work", "is that okay", "is that ok", "does that sound",
          "how does that sound", "would that be okay", "would that work", "is that alright", "is that all right",
          "are you happy with", "does that help", "is that acceptable", "sound good", "sounds good",
          "work for you"]
TIMED = ["today", "tonight", "this afternoon", "this evening", "this morning", "tomorrow", "by tomorrow",
         "within the hour", "within an hour", "within", "in the next", "right now", "right away",
         "call you back", "by the end of", "this week", "by monday", "by tuesday", "by wednesday",
         "by thursday", "by friday", "minutes", "hours", "business days"]
THANKS = ["thank you", "thanks", "thank", "appreciate"]
ACCEPTANCE = ["okay", "ok", "that works", "that would work", "that will work", "sounds good", "thank you",
              "thanks", "great", "perfect", "yes please", "that's fine", "that is fine", "alright", "all right"]
HOLD = ["on hold", "hold on", "bear with me", "one moment", "a moment", "just a moment", "one second",
        "a second", "one minute", "a minute", "a few moments", "while i check", "while i look"]
"""An agent line announcing a wait: the silence after it is a hold, not dead air (up to HOLD_MAX_S)."""
HOLD_MAX_S = 60.0        # an announced wait longer than this is dead air after all: check back in
HOLD_SAID_S = 3.0        # the announcement ends at most this long before the silence
PROBLEM = ["not working", "doesn't work", "does not work", "stopped working", "broken", "cracked", "damaged", "faulty",
           "wrong", "problem", "issue", "never arrived", "not arrived", "hasn't arrived", "has not arrived",
           "didn't arrive", "did not arrive", "does not arrive", "missing", "lost", "late", "charged", "overcharged",
           "refund", "cancel", "complaint", "complain", "error", "can't", "cannot", "unable", "still waiting"]
"""A customer line with one of these brings something to put right (a calm information request has none)."""
NOTHING_TO_SOLVE = ("not needed: a calm call with nothing to put right "
                    "(no frustration, no problem named, no action offered)")
BUT = ["but", "however", "unfortunately", "though"]
"""What turns "I understand" into a polite opening for a deflection, when one of [scorecard] undo_words follows."""

RESPOND_WITHIN_S = 3.0   # the agent's first words this soon after the call starts or the customer's turn ends
SLOW_RESPONSE_CREDIT = 0.7  # Respond's credit when the agent replied, but not promptly (before dead air)
TURN_GAP_S = 1.0         # the customer's spurts this close together are one turn (the transcript's phrase rule)
CLOSING_SHARE, CLOSING_S = 0.2, 30.0  # "near the end": the last 20% of the call or its last 30 s
MIN_COMPLAINT_WORDS = 5
SAME_MOMENT_S = 3.0      # a cue this soon after what the transcript or an interruption shows is the same moment
CUE_AFTER_LINE_S = 10.0  # an own_the_problem cue fires once the line's final transcript is in: up to this late
NO_TRANSCRIPT = "no transcript"

ITEMS = [("respond", "Respond"), ("empathize", "Empathize and apologize"), ("seek_to_solve", "Seek to solve"),
         ("open_mind", "Open your mind to the customer's solution"), ("listen", "Listen"),
         ("verify", "Verify the solution"), ("execute", "Execute"), ("document", "Document"), ("thank", "Thank")]


# --- events in, events out ----------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Lower case, curly apostrophes straightened, punctuation to spaces, a space either side (kept: every
    line and phrase is looked at by several items)."""
    text = text.lower().replace("\u2019", "'")
    return " " + re.sub(r"[^a-z0-9' ]+", " ", text).strip() + " "


def find_phrase(text: str, phrases: list[str]) -> str | None:
    """The first of `phrases` said in `text` word for word."""
    norm = normalize(text)
    return next((p for p in phrases if normalize(p) in norm), None)


def clock(t: float) -> str:
    """m:ss, the way a coach reads a call."""
    t = max(0.0, t)
    return f"{int(t // 60)}:{int(t % 60):02d}"


QUOTE_CHARS = 140


def quote(line: Transcript, phrase: str | None = None) -> str:
    """"m:ss party: text", a long line cut to the part around `phrase` so the evidence stays readable."""
    text = " ".join(line.text.split())
    if len(text) > QUOTE_CHARS:
        at = text.lower().find(phrase) if phrase else 0
        lo = max(0, min(at - QUOTE_CHARS // 3, len(text) - QUOTE_CHARS))
        hi = lo + QUOTE_CHARS
        part = text[lo:hi]
        part = part.split(" ", 1)[-1] if lo and text[lo - 1] != " " else part  # whole words only
        part = part.rsplit(" ", 1)[0] if hi < len(text) and text[hi] != " " else part
        text = ("..." if lo else "") + part.strip() + ("..." if hi < len(text) else "")
    return f"{clock(line.start)} {line.party}: {text}"


def _says(phrase: str) -> str:
    """A lower-case phrase as said: "nothing I can do"."""
    return re.sub(r"\bi\b", "I", phrase)


def _aside(detail: str) -> str:
    """A shared detail after the count: " (+11 dB)" as it is, a quote in brackets: ' ("it is our policy")'."""
    return "" if not detail else f" {detail}" if detail.startswith("(") else f" ({detail})"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


# --- what happened, how often, what it costs ----------------------------------------------------------

@dataclass
class At:
    """One occurrence: when (a link into the replay) and a few words of what (a phrase, a length)."""

    t: float
    detail: str = ""


@dataclass
class Finding:
    """A behaviour seen `len(at)` times (or `count` times when it has no moments, such as a talk share).
    It costs its item `cost * n ** exponent` of its credit: each repeat less than the one before."""

    what: str
    at: list[At] = field(default_factory=list)
    cost: float = 0.0
    count: int | None = None
    charged: float | None = None
    """What it did cost when an item charged less (it overlapped another finding); None: the full cost."""

    @property
    def n(self) -> int:
        return len(self.at) if self.count is None else self.count

    def total(self, exponent: float) -> float:
        if self.charged is not None:
            return self.charged
        return min(1.0, self.cost * self.n ** exponent) if self.n else 0.0

    @property
    def detail(self) -> str:
        """The detail every occurrence shares (said once, not at each time), else ""."""
        details = {a.detail for a in self.at}
        return details.pop() if len(self.at) > 1 and len(details) == 1 else ""

    def text(self) -> str:
        """Coach words: "talked over the customer 3 times: 0:26, 1:02, 4:10"."""
        if not self.at:
            return self.what
        same = self.detail
        times = ", ".join(clock(a.t) + (f" {a.detail}" if a.detail and not same else "") for a in self.at)
        return f"{self.what} {'once' if self.n == 1 else f'{self.n} times'}{_aside(same)}: {times}"

    def to_dict(self, exponent: float) -> dict:
        return {"text": self.text(), "what": self.what, "count": self.n, "cost": round(self.total(exponent), 3),
                "detail": self.detail, "at": [{"t": round(a.t, 2), "detail": a.detail} for a in self.at]}


# --- the facts every item reads -------------------------------------------------------------------

class Call:
    """One call's events, with the final transcript, talk spurts and the behaviours the items count worked
    out once, and the user's config: the frustration words ([cues.acknowledge] frustration), the most of
    the talk an agent who listens holds ([cues.let_them_talk] share), the deflections ([cues.own_the_problem]
    phrases) and how long a silence is dead air ([cues.dead_air] silence_s) are the ones the live cues use."""

    def __init__(self, events: list, config: Config | None = None):
        config = config or Config()
        self.card = config.scorecard
        self.costs = config.scorecard.costs
        self.frustration = config.cues.acknowledge.frustration
        self.max_agent_share = config.cues.let_them_talk.share
        self.deflections = config.cues.own_the_problem.phrases
        self.dead_air_s = config.cues.dead_air.silence_s
        self.events = events_from_dicts(events)
        end = [e for e in self.events if e.type == "call_end"]
        self.duration = end[-1].t if end else max((e.t for e in self.events), default=0.0)
        self.lines = [line for line in final_lines(self.events) if line.text.strip()]
        self.spurts = {p: sorted(((e.start, e.t) for e in self.of("talk_end") if e.party == p)) for p in PARTIES}
        self.policy = self._policy()
        self.dead_air = self._dead_air()

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def cues(self, kind: str) -> list[Event]:
        return [e for e in self.of("cue") if e.kind == kind]

    def said(self, party: str, phrases: list[str]) -> list[tuple[Transcript, str]]:
        """(line, phrase) for each of `party`'s final lines that contains one of `phrases`."""
        hits = ((line, find_phrase(line.text, phrases)) for line in self.lines if line.party == party)
        return [(line, phrase) for line, phrase in hits if phrase]

    def undone(self, text: str) -> str | None:
        """The undo word when `text` takes its own empathy back: "I understand, but our policy ...", not
        "I'm sorry, but let me read you our policy so you know your options" (an action follows)."""
        norm = normalize(text)
        for phrase in EMPATHY:
            at = norm.find(normalize(phrase))
            if at < 0:
                continue
            rest = norm[at:]
            for but in BUT:
                cut = rest.find(f" {but} ")
                if cut >= 0:
                    word = find_phrase(rest[cut + len(but) + 1:], self.card.undo_words)
                    if word and not find_phrase(rest[cut + len(but) + 1:], ACTIONS):
                        return word
        return None

    def customer_turn(self) -> tuple[float, float] | None:
        """The customer's first turn (their first spurts, merged while under a second apart)."""
        spurts = self.spurts["customer"]
        if not spurts:
            return None
        start, end = spurts[0]
        for s, e in spurts[1:]:
            if s - end > TURN_GAP_S:
                break
            end = max(end, e)
        return start, end

    def complaint(self) -> Transcript | None:
        """The customer's first complaint: their first line with a frustration word, else their first line."""
        lines = [line for line in self.lines if line.party == "customer"]
        return next((line for line in lines if cue_phrase(line.text, self.frustration)), lines[0] if lines else None)

    @functools.cached_property
    def upset(self) -> bool:
        """The customer sounded frustrated: a frustration word, or an acknowledge cue (their voice, live)."""
        return bool(self.cues("acknowledge")) or any(
            cue_phrase(line.text, self.frustration) for line in self.lines if line.party == "customer")

    @functools.cached_property
    def nothing_to_solve(self) -> bool:
        """A calm information request: the customer never sounded upset or named a problem, and the agent
        offered no action. Then Seek to solve, Open your mind, Verify, Execute and Document do not apply."""
        return not self.upset and not self.said("customer", PROBLEM) and not self.said("agent", ACTIONS)

    def talk_s(self, party: str) -> float:
        return sum(e - s for s, e in self.spurts[party])

    # --- behaviours, each occurrence once ---

    def _policy(self) -> Finding:
        """Policy talk and passing the buck: agent lines with a deflecting phrase or an "I understand, but
        <policy>", and own_the_problem cues no such line explains (the cue's matcher may hear more)."""
        at, spans = [], []
        for line in (x for x in self.lines if x.party == "agent"):
            phrase = cue_phrase(line.text, self.deflections)
            undo = None if phrase else self.undone(line.text)
            if phrase or undo:
                at.append(At(line.start, f'"{_says(phrase)}"' if phrase else f'"... but {undo}"'))
                spans.append((line.start, line.end + CUE_AFTER_LINE_S))
        for cue in self.cues("own_the_problem"):
            if not any(lo <= cue.t <= hi for lo, hi in spans):
                said = re.search(r'"([^"]+)"', cue.reason)
                at.append(At(cue.t, f'"{said.group(1)}"' if said else ""))
        return Finding("talked policy or passed the buck", sorted(at, key=lambda a: a.t), self.costs.policy)

    def _dead_air(self) -> Finding:
        """Silences of [cues.dead_air] silence_s once someone has spoken and before the call ended, and
        dead_air cues in no such silence (a call's opening silence is not dead air)."""
        silences = [e for e in self.of("silence") if e.before is not None]
        long = [e for e in silences if e.after is not None and e.end - e.t >= self.dead_air_s]
        held = [e for e in long if self._announced(e)]
        at = [At(e.t, f"({e.end - e.t:.0f} s)") for e in long if e not in held]
        opening = [e for e in self.of("silence") if e.before is None] + held
        first_talk = min((s for spurts in self.spurts.values() for s, _ in spurts), default=None)
        for cue in self.cues("dead_air"):
            if any(e.t <= cue.t <= e.end + 0.5 for e in long + opening):
                continue
            if first_talk is not None and cue.t > first_talk:
                at.append(At(cue.t))
        return Finding("left the customer in silence", sorted(at, key=lambda a: a.t), self.costs.dead_air)

    def _announced(self, silence: Event) -> bool:
        """A wait the agent announced ("bear with me a moment") and kept short: the customer was informed."""
        if silence.end - silence.t > HOLD_MAX_S:
            return False
        before = [x for x in self.lines if x.party == "agent" and silence.t - HOLD_SAID_S <= x.end <= silence.t + 0.5]
        return any(find_phrase(x.text, HOLD) for x in before)

    def interruptions(self) -> Finding:
        """The agent talking over the customer: interruptions by the agent, and wait_for_pause cues that
        are not one of them."""
        cuts = [e for e in self.of("interruption") if e.by == "agent"]
        at = [At(e.t) for e in cuts]
        for cue in self.cues("wait_for_pause"):
            if not any(e.t - 0.5 <= cue.t <= max(e.t, e.at) + SAME_MOMENT_S for e in cuts):
                at.append(At(cue.t))
        return Finding("talked over the customer", sorted(at, key=lambda a: a.t), self.costs.interruption)

    def raised_voice(self) -> Finding:
        def rise(reason: str) -> str:
            db = re.search(r"([+-]?\d+(?:\.\d+)?) dB", reason)
            return f"(+{abs(float(db.group(1))):.0f} dB)" if db else ""
        return Finding("raised their voice", [At(c.t, rise(c.reason)) for c in self.cues("speak_softly")],
                       self.costs.raised_voice)

    def held_floor(self) -> Finding:
        return Finding("kept talking while the customer was upset", [At(c.t) for c in self.cues("let_them_talk")],
                       self.costs.held_floor)

    def unacknowledged(self) -> Finding:
        return Finding("left the customer's frustration unacknowledged",
                       [At(c.t) for c in self.cues("acknowledge")], self.costs.unacknowledged)


def item(key: str, credit: float, evidence: str, t: float | None = None, findings: list[Finding] = (),
         exponent: float = 0.5) -> dict:
    """One scorecard row: its credit (0..1, met when full), the evidence in words (`basis`, the main finding,
    then every counted behaviour with its times) and `notes`, those behaviours with their times as numbers."""
    findings = [f for f in findings if f.n]
    credit = max(0.0, min(1.0, credit - sum(f.total(exponent) for f in findings)))
    words = "; ".join([evidence] + [f.text() for f in findings])
    times = [a.t for f in findings for a in f.at]
    if t is None and times:
        t = min(times)
    return {"item": key, "title": dict(ITEMS)[key], "met": credit >= 0.999, "credit": round(credit, 2),
            "evidence": words, "basis": evidence, "t": None if t is None else round(t, 2),
            "notes": [f.to_dict(exponent) for f in findings]}


def _timing_credit(call: Call, delay: float) -> float:
    """Full credit for empathy within apology_within_s of the complaint, falling to late_apology_credit
    by apology_late_s."""
    within, late, floor = call.card.apology_within_s, call.card.apology_late_s, call.card.late_apology_credit
    if delay <= within:
        return 1.0
    if delay >= late or late <= within:
        return floor
    return 1.0 - (1.0 - floor) * (delay - within) / (late - within)


# --- the nine items ---------------------------------------------------------------------------------

def respond(call: Call) -> dict:
    """Respond: people need to feel heard, so the agent speaks promptly, never leaves the first complaint
    hanging, and never leaves the customer in silence later (dead air)."""
    key, x = "respond", call.card.repeat_exponent
    agent = call.spurts["agent"]
    if not agent:
        return item(key, 0.0, "the agent never spoke", exponent=x)
    first = agent[0][0]
    turn = call.customer_turn()
    if turn is None or first <= turn[0]:
        prompt, opening = first <= RESPOND_WITHIN_S, f"agent first spoke {first:.1f} s into the call"
    else:
        prompt, opening = first - turn[1] <= RESPOND_WITHIN_S, \
            f"agent first spoke {max(0.0, first - turn[1]):.1f} s after the customer's first turn"
    if turn is None:
        return item(key, 1.0 if prompt else SLOW_RESPONSE_CREDIT, opening + "; the customer never spoke",
                    first, [call.dead_air], x)
    # The reply is the agent's first spurt that goes on past the customer's first turn: it may have begun
    # over that turn (talking over is for Listen to judge, not Respond).
    reply = next((s for s, e in agent if e > turn[1] and s > turn[0]), None)
    if reply is None:
        return item(key, 0.0, f"{opening}; the agent never replied", None, [call.dead_air], x)
    if reply < turn[1]:
        answer = f"agent came in {turn[1] - reply:.1f} s before the customer's first turn ended at {clock(turn[1])}"
    else:
        answer = f"agent replied {reply - turn[1]:.1f} s after the customer's first turn ended at {clock(turn[1])}"
    # A wait as long as dead air is counted as dead air (below), not twice.
    slow = not prompt or RESPOND_WITHIN_S < reply - turn[1] < call.dead_air_s
    credit = SLOW_RESPONSE_CREDIT if slow else 1.0
    return item(key, credit, f"{opening}; {answer}", None if call.dead_air.n else (first if prompt else reply),
                [call.dead_air], x)


def empathize(call: Call) -> dict:
    """Empathize and apologize: the customer is heard once the agent names their feelings or says sorry,
    soon; a late apology is partial credit, "I understand, but our policy ..." is none, and every
    frustration the overlay had to cue (acknowledge) counts against it. A customer who never sounded
    upset needs none."""
    key, x = "empathize", call.card.repeat_exponent
    if not call.lines:
        return item(key, 0.0, NO_TRANSCRIPT, exponent=x)
    complaint = call.complaint()
    hits = call.said("agent", EMPATHY)
    undone = [(line, call.undone(line.text)) for line, _ in hits]
    taken_back = Finding('said "I understand, but ..." (not empathy)',
                         [At(line.start, f'"... but {word}"') for line, word in undone if word])
    after = [(line, p) for (line, p), (_, word) in zip(hits, undone)
             if not word and (complaint is None or line.end >= complaint.start)]
    missed = call.unacknowledged()
    missed.charged = 0.0  # unless the apology came (below): with no empathy at all the credit is 0 already
    if not call.upset:  # a calm customer needs no apology; if one came, quote it
        calm = "the customer did not sound upset (no frustration word, no acknowledge cue): nothing to acknowledge"
        return item(key, 1.0, quote(*after[0]) if after else calm, after[0][0].start if after else None,
                    [taken_back], x)
    if not after:
        about = f' after the customer\'s complaint "{quote(complaint)}"' if complaint else ""
        return item(key, 0.0, f"no empathy or apology by the agent{about}", complaint.end if complaint else None,
                    [taken_back, missed], x)
    line, phrase = after[0]
    delay = 0.0 if complaint is None else max(0.0, line.start - complaint.end)
    timing = _timing_credit(call, delay)
    said = quote(line, phrase) + ("" if complaint is None else
                                  f" ({delay:.1f} s after the customer's complaint at {clock(complaint.start)})")
    if timing < 1.0:
        said += f"; late: {100 * timing:.0f}% credit (full within {call.card.apology_within_s:.0f} s)"
    # An acknowledge cue is usually the same late apology seen live: the lower of the two counts, not both.
    missed.charged = None
    missed.charged = max(0.0, timing - (1.0 - missed.total(x)))
    return item(key, timing, said, line.start, [taken_back, missed], x)


def _first_hit(call: Call, key: str, phrases: list[str], missing: str, findings: list[Finding] = ()) -> dict:
    x = call.card.repeat_exponent
    if not call.lines:
        return item(key, 0.0, NO_TRANSCRIPT, exponent=x)
    hits = call.said("agent", phrases)
    if not hits and call.nothing_to_solve:
        return item(key, 1.0, NOTHING_TO_SOLVE, None, findings, x)
    if not hits:
        n = sum(1 for line in call.lines if line.party == "agent")
        return item(key, 0.0, f"{missing} in {plural(n, 'agent line')}", None, findings, x)
    line, phrase = hits[0]
    return item(key, 1.0, quote(line, phrase), line.start, findings, x)


def seek_to_solve(call: Call) -> dict:
    """Seek to solve: the agent proposes a concrete action ("I will", "let me") rather than explaining the
    problem; every deflection ("it's our policy", "nothing I can do") counts against it."""
    return _first_hit(call, "seek_to_solve", ACTIONS, 'no action phrase ("I will", "let me", "I can send")',
                      [call.policy])


def open_mind(call: Call) -> dict:
    """Open your mind: the customer often knows what would make it right, so the agent asks."""
    return _first_hit(call, "open_mind", OPEN_MIND,
                      'no question about what the customer wants ("what would work for you")')


def listen(call: Call) -> dict:
    """Listen: the agent lets the customer talk: a modest talk share, no talking over them, no raised
    voice, no holding the floor while they are upset; each time counts."""
    key, x = "listen", call.card.repeat_exponent
    agent, customer = call.talk_s("agent"), call.talk_s("customer")
    if agent + customer == 0:
        return item(key, 0.0, "no talk measured", exponent=x)
    share = agent / (agent + customer)
    over = Finding(f"held {100 * share:.0f}% of the talk (a listener keeps to {100 * call.max_agent_share:.0f}%)",
                   cost=call.costs.talk_share, count=int(share > call.max_agent_share))
    findings = [call.interruptions(), call.raised_voice(), call.held_floor(), over]
    cuts = findings[0].n
    return item(key, 1.0, f"agent talk share {100 * share:.0f}%, {plural(cuts, 'interruption')} by the agent",
                None, findings, x)


def verify(call: Call) -> dict:
    """Verify the solution: the agent checks that the customer agrees before acting on it."""
    return _first_hit(call, "verify", VERIFY, 'no check of agreement ("does that work for you", "is that okay")')


def execute(call: Call) -> dict:
    """Execute: a promise with a time ("I will send it today") is one the customer can hold the agent to;
    deflections undo it, and dead air is the opposite of keeping the customer informed."""
    key, x = "execute", call.card.repeat_exponent
    if not call.lines:
        return item(key, 0.0, NO_TRANSCRIPT, exponent=x)
    findings = [call.policy, call.dead_air]
    for line, _ in call.said("agent", ACTIONS):
        when = find_phrase(line.text, TIMED)
        if when:
            return item(key, 1.0, f'{quote(line, when)} (commitment "{when}")', line.start, findings, x)
    if call.nothing_to_solve:
        return item(key, 1.0, NOTHING_TO_SOLVE, None, findings, x)
    n = len(call.said("agent", ACTIONS))
    return item(key, 0.0, f"no commitment with a time (\"today\", \"within the hour\") "
                          f"in {plural(n, 'agent action line')}", None, findings, x)


def agreed_solution(call: Call) -> tuple[Transcript, Transcript] | None:
    """The last agent action line whose next customer line accepts it, with that acceptance."""
    for action, _ in reversed(call.said("agent", ACTIONS)):
        answer = next((line for line in call.lines if line.party == "customer" and line.start > action.start), None)
        if answer is not None and find_phrase(answer.text, ACCEPTANCE):
            return action, answer
    return None


def document(call: Call) -> dict:
    """Document: the record needs the problem in the customer's words and the solution both sides agreed."""
    key, x = "document", call.card.repeat_exponent
    if not call.lines:
        return item(key, 0.0, NO_TRANSCRIPT, exponent=x)
    if call.nothing_to_solve:
        return item(key, 1.0, NOTHING_TO_SOLVE, exponent=x)
    problem = next((line for line in call.lines
                    if line.party == "customer" and len(line.text.split()) >= MIN_COMPLAINT_WORDS), None)
    agreed = agreed_solution(call)
    said_problem = f'problem: "{quote(problem)}"' if problem else "no customer line describing the problem"
    said_solution = f'agreed solution: "{quote(agreed[0])}", accepted "{quote(agreed[1])}"' if agreed else \
        "no agent action the customer accepted"
    return item(key, float(bool(problem and agreed)), f"{said_problem}; {said_solution}",
                agreed[0].start if agreed else None, exponent=x)


def thank(call: Call) -> dict:
    """Thank: closing on thanks leaves the customer valued; a greeting's "thank you for calling" does not count."""
    key, x = "thank", call.card.repeat_exponent
    if not call.lines:
        return item(key, 0.0, NO_TRANSCRIPT, exponent=x)
    closing = call.duration - max(CLOSING_SHARE * call.duration, CLOSING_S)
    turn = call.customer_turn()
    first = next((line for line in call.lines if line.party == "customer"), None)
    after = max(closing, turn[1] if turn else 0.0, first.end if first else 0.0)
    hits = [(line, phrase) for line, phrase in call.said("agent", THANKS) if line.end >= after]
    if not hits:
        return item(key, 0.0, f"no thanks by the agent near the end (from {clock(after)})", exponent=x)
    line, phrase = hits[-1]
    return item(key, 1.0, quote(line, phrase), line.start, exponent=x)


CHECKS = [respond, empathize, seek_to_solve, open_mind, listen, verify, execute, document, thank]


def score_call(events: list, config: Config | None = None) -> dict:
    """The scorecard of a call: each item's credit and evidence, in CUES.md order, how many are fully met,
    and `score`, the credits weighted by [scorecard.weights] as a whole number 0..100.
    `config` is the user's (default: the defaults), so the scorecard agrees with the cues they saw."""
    config = config or Config()
    call = Call(events, config)
    items = [check(call) for check in CHECKS]
    weights = config.scorecard.weights
    total = sum(getattr(weights, i["item"]) for i in items)
    score = sum(getattr(weights, i["item"]) * i["credit"] for i in items) / total if total else 0.0
    return {"items": items, "met": sum(1 for i in items if i["met"]), "total": len(items), "score": round(100 * score)}
