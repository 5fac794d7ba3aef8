"""The de-escalation scorecard: the nine RESOLVED + thank-you items of CUES.md, read from a call's events.

Works on the events' JSON form (what the store gives back), so a live call, a file and a replay score
alike. Each item is met or missed with its evidence: a timestamped transcript line or a measured figure.
Phrase lists are lower case and matched with `monitor.analysis.cues.find_phrase` (whole words, punctuation ignored).
"""

from __future__ import annotations

from .. import PARTIES
from ..config import Config
from ..analysis.cues import find_phrase
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
          "are you happy with", "does that help", "is that acceptable", "that sound good", "sound good to you",
          "work for you"]
TIMED = ["today", "tonight", "this afternoon", "this evening", "this morning", "tomorrow", "by tomorrow",
         "within the hour", "within an hour", "within", "in the next", "right now", "right away",
         "call you back", "by the end of", "this week", "by monday", "by tuesday", "by wednesday",
         "by thursday", "by friday", "minutes", "hours", "business days"]
THANKS = ["thank you", "thanks", "thank", "appreciate"]
ACCEPTANCE = ["okay", "ok", "that works", "that would work", "that will work", "sounds good", "thank you",
              "thanks", "great", "perfect", "yes please", "that's fine", "that is fine", "alright", "all right"]

RESPOND_WITHIN_S = 3.0   # the agent's first words this soon after the call starts or the customer's turn ends
LONG_SILENCE_S = 5.0     # a wait longer than this after the customer's first turn is not a prompt response
TURN_GAP_S = 1.0         # the customer's spurts this close together are one turn (the transcript's phrase rule)
CLOSING_SHARE, CLOSING_S = 0.2, 30.0  # "near the end": the last 20% of the call or its last 30 s
MIN_COMPLAINT_WORDS = 5
NO_TRANSCRIPT = "no transcript"

ITEMS = [("respond", "Respond"), ("empathize", "Empathize and apologize"), ("seek_to_solve", "Seek to solve"),
         ("open_mind", "Open your mind to the customer's solution"), ("listen", "Listen"),
         ("verify", "Verify the solution"), ("execute", "Execute"), ("document", "Document"), ("thank", "Thank")]


# --- events in, events out ----------------------------------------------------------------------

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


# --- the facts every item reads -------------------------------------------------------------------

class Call:
    """One call's events, with the final transcript and talk spurts worked out once, and the user's
    config: the frustration words ([cues.acknowledge] frustration) and the most of the talk an agent
    who listens holds ([cues.let_them_talk] share) are the ones the live cues use."""

    def __init__(self, events: list, config: Config | None = None):
        config = config or Config()
        self.frustration = config.cues.acknowledge.frustration
        self.max_agent_share = config.cues.let_them_talk.share
        self.events = events_from_dicts(events)
        end = [e for e in self.events if e.type == "call_end"]
        self.duration = end[-1].t if end else max((e.t for e in self.events), default=0.0)
        self.lines = [line for line in final_lines(self.events) if line.text.strip()]
        self.spurts = {p: sorted(((e.start, e.t) for e in self.of("talk_end") if e.party == p)) for p in PARTIES}

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def said(self, party: str, phrases: list[str]) -> list[tuple[Transcript, str]]:
        """(line, phrase) for each of `party`'s final lines that contains one of `phrases`."""
        hits = ((line, find_phrase(line.text, phrases)) for line in self.lines if line.party == party)
        return [(line, phrase) for line, phrase in hits if phrase]

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
        return next((line for line in lines if find_phrase(line.text, self.frustration)), lines[0] if lines else None)

    def talk_s(self, party: str) -> float:
        return sum(e - s for s, e in self.spurts[party])


def item(key: str, met: bool, evidence: str, t: float | None = None) -> dict:
    title = dict(ITEMS)[key]
    return {"item": key, "title": title, "met": bool(met), "evidence": evidence,
            "t": None if t is None else round(t, 2)}


# --- the nine items ---------------------------------------------------------------------------------

def respond(call: Call) -> dict:
    """Respond: people need to feel heard, so the agent speaks promptly and never leaves the first complaint hanging."""
    agent = call.spurts["agent"]
    if not agent:
        return item("respond", False, "the agent never spoke")
    first = agent[0][0]
    turn = call.customer_turn()
    if turn is None or first <= turn[0]:
        prompt, opening = first <= RESPOND_WITHIN_S, f"agent first spoke {first:.1f} s into the call"
    else:
        prompt, opening = first - turn[1] <= RESPOND_WITHIN_S, \
            f"agent first spoke {max(0.0, first - turn[1]):.1f} s after the customer's first turn"
    if turn is None:
        return item("respond", prompt, opening + "; the customer never spoke", first)
    # The reply is the agent's first spurt that goes on past the customer's first turn: it may have begun
    # over that turn (talking over is for Listen to judge, not Respond).
    reply = next((s for s, e in agent if e > turn[1] and s > turn[0]), None)
    waits = [e for e in call.of("silence")
             if e.t >= turn[1] - 0.05 and (reply is None or e.t < reply) and e.end - e.t > LONG_SILENCE_S]
    if waits:
        w = waits[0]
        return item("respond", False, f"{w.end - w.t:.1f} s of silence after the customer's first turn "
                                      f"({clock(w.t)}-{clock(w.end)}); {opening}", w.t)
    if reply is None:
        answer = "the agent never replied"
    elif reply < turn[1]:
        answer = f"agent came in {turn[1] - reply:.1f} s before the customer's first turn ended at {clock(turn[1])}"
    else:
        answer = f"agent replied {reply - turn[1]:.1f} s after the customer's first turn ended at {clock(turn[1])}"
    return item("respond", prompt and reply is not None, f"{opening}; {answer}", first if prompt else reply)


def empathize(call: Call) -> dict:
    """Empathize and apologize: the customer is heard once the agent names their feelings or says sorry, soon."""
    if not call.lines:
        return item("empathize", False, NO_TRANSCRIPT)
    complaint = call.complaint()
    hits = call.said("agent", EMPATHY)
    after = [(line, p) for line, p in hits if complaint is None or line.end >= complaint.start]
    if not after:
        about = f' after the customer\'s complaint "{quote(complaint)}"' if complaint else ""
        return item("empathize", False, f"no empathy or apology by the agent{about}",
                    complaint.end if complaint else None)
    line, phrase = after[0]
    delay = "" if complaint is None else \
        f" ({max(0.0, line.start - complaint.end):.1f} s after the customer's complaint at {clock(complaint.start)})"
    return item("empathize", True, quote(line, phrase) + delay, line.start)


def _first_hit(call: Call, key: str, phrases: list[str], missing: str) -> dict:
    if not call.lines:
        return item(key, False, NO_TRANSCRIPT)
    hits = call.said("agent", phrases)
    if not hits:
        n = sum(1 for line in call.lines if line.party == "agent")
        return item(key, False, f"{missing} in {n} agent line{'s' * (n != 1)}")
    line, phrase = hits[0]
    return item(key, True, quote(line, phrase), line.start)


def seek_to_solve(call: Call) -> dict:
    """Seek to solve: the agent proposes a concrete action ("I will", "let me") rather than explaining the problem."""
    return _first_hit(call, "seek_to_solve", ACTIONS, 'no action phrase ("I will", "let me", "I can send")')


def open_mind(call: Call) -> dict:
    """Open your mind: the customer often knows what would make it right, so the agent asks."""
    return _first_hit(call, "open_mind", OPEN_MIND,
                      'no question about what the customer wants ("what would work for you")')


def listen(call: Call) -> dict:
    """Listen: the agent lets the customer talk: a modest talk share, no talking over them, no listening cues."""
    agent, customer = call.talk_s("agent"), call.talk_s("customer")
    if agent + customer == 0:
        return item("listen", False, "no talk measured")
    share = agent / (agent + customer)
    cuts = [e for e in call.of("interruption") if e.by == "agent"]
    cues = [e for e in call.of("cue") if e.kind in ("wait_for_pause", "let_them_talk")]
    said_cues = ", ".join(f"{c.kind} at {clock(c.t)}" for c in cues) or "no wait_for_pause or let_them_talk cues"
    said_cuts = f"{len(cuts)} interruption{'s' * (len(cuts) != 1)} by the agent" + \
        (f" ({', '.join(clock(c.t) for c in cuts)})" if cuts else "")
    met = share <= call.max_agent_share and not cuts and not cues
    first = min([e.t for e in cuts + cues], default=None)
    return item("listen", met, f"agent talk share {100 * share:.0f}%, {said_cuts}, {said_cues}", first)


def verify(call: Call) -> dict:
    """Verify the solution: the agent checks that the customer agrees before acting on it."""
    return _first_hit(call, "verify", VERIFY, 'no check of agreement ("does that work for you", "is that okay")')


def execute(call: Call) -> dict:
    """Execute: a promise with a time ("I will send it today") is one the customer can hold the agent to."""
    if not call.lines:
        return item("execute", False, NO_TRANSCRIPT)
    for line, _ in call.said("agent", ACTIONS):
        when = find_phrase(line.text, TIMED)
        if when:
            return item("execute", True, f'{quote(line, when)} (commitment "{when}")', line.start)
    n = len(call.said("agent", ACTIONS))
    return item("execute", False, f"no commitment with a time (\"today\", \"within the hour\") "
                                  f"in {n} agent action line{'s' * (n != 1)}")


def agreed_solution(call: Call) -> tuple[Transcript, Transcript] | None:
    """The last agent action line whose next customer line accepts it, with that acceptance."""
    for action, _ in reversed(call.said("agent", ACTIONS)):
        answer = next((line for line in call.lines if line.party == "customer" and line.start > action.start), None)
        if answer is not None and find_phrase(answer.text, ACCEPTANCE):
            return action, answer
    return None


def document(call: Call) -> dict:
    """Document: the record needs the problem in the customer's words and the solution both sides agreed."""
    if not call.lines:
        return item("document", False, NO_TRANSCRIPT)
    problem = next((line for line in call.lines
                    if line.party == "customer" and len(line.text.split()) >= MIN_COMPLAINT_WORDS), None)
    agreed = agreed_solution(call)
    said_problem = f'problem: "{quote(problem)}"' if problem else "no customer line describing the problem"
    said_solution = f'agreed solution: "{quote(agreed[0])}", accepted "{quote(agreed[1])}"' if agreed else \
        "no agent action the customer accepted"
    return item("document", bool(problem and agreed), f"{said_problem}; {said_solution}",
                agreed[0].start if agreed else None)


def thank(call: Call) -> dict:
    """Thank: closing on thanks leaves the customer valued; a greeting's "thank you for calling" does not count."""
    if not call.lines:
        return item("thank", False, NO_TRANSCRIPT)
    closing = call.duration - max(CLOSING_SHARE * call.duration, CLOSING_S)
    turn = call.customer_turn()
    first = next((line for line in call.lines if line.party == "customer"), None)
    after = max(closing, turn[1] if turn else 0.0, first.end if first else 0.0)
    hits = [(line, phrase) for line, phrase in call.said("agent", THANKS) if line.end >= after]
    if not hits:
        return item("thank", False, f"no thanks by the agent near the end (from {clock(after)})")
    line, phrase = hits[-1]
    return item("thank", True, quote(line, phrase), line.start)


CHECKS = [respond, empathize, seek_to_solve, open_mind, listen, verify, execute, document, thank]


def score_call(events: list, config: Config | None = None) -> dict:
    """The scorecard of a call: each item met or missed with its evidence, in CUES.md order.
    `config` is the user's (default: the defaults), so the scorecard agrees with the cues they saw."""
    call = Call(events, config)
    items = [check(call) for check in CHECKS]
    return {"items": items, "met": sum(1 for i in items if i["met"]), "total": len(items)}
