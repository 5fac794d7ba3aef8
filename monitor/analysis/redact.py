"""Personal data out of every transcript before it leaves the pipeline: card, account and ID numbers
and e-mail addresses, however Whisper writes them ("4532 1234", "4.5.3.2.", "four five three two",
"7 to double 9", "john dot smith at example dot com").

One `Redactor` per call sees each party's lines in order, so a number read across turns ("1734" ...
"1 2 5 6" ... "7 to double 9") is one run. The rules, their reasons and their limits are in
docs/privacy.md; the options are `[redact]` in config.toml.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from ..config import RedactConfig
from ..events import Transcript

log = logging.getLogger("calmline.redact")

CARD_DIGITS = range(13, 20)
UNITS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
DIGIT_WORDS = {word: str(d) for d, word in UNITS.items()} | {"oh": "0", "o": "0", "nought": "0"}
TEENS = {w: str(10 + i) for i, w in enumerate(("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                                               "sixteen", "seventeen", "eighteen", "nineteen"))}
TENS = {w: str(i + 2) for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy",
                                             "eighty", "ninety"))}
TENS_WORD = re.compile(rf"({'|'.join(TENS)})(?:-({'|'.join(UNITS.values())}))?")
UNIT_OF = {word: str(d) for d, word in UNITS.items()}
REPEAT = {"double": 2, "triple": 3, "treble": 3}
TO_TWO = {"to", "too"}  # "two" heard as "to" between single digits: "7 to double 9"
ZERO_ONLY_IN_RUNS = {"oh", "o", "nought"}
FILLERS = {"uh", "um", "er", "erm", "ah", "eh", "hmm", "mm", "-", ""}
"""Tokens that may sit inside a run of digits without ending it."""
LEADS = FILLERS | {"and", "then", "next", "so", "ok", "okay", "yes", "yeah", "right", "it's", "is", "the", "rest"}
"""Tokens that may come before the rest of a run on a party's next line."""
UNIT_WORDS = {"dollars", "dollar", "pounds", "pound", "euros", "euro", "bucks", "cents", "pence", "percent",
              "minutes", "minute", "hours", "hour", "seconds", "days", "day", "weeks", "week", "months", "month",
              "years", "year", "am", "pm", "a.m", "p.m", "o'clock", "items", "times", "people", "kilos", "miles",
              "pieces", "gigabytes", "gb", "mb", "k"}
"""A single written number followed by one of these is a quantity, a price or a time, not an identifier."""
NOT_A_MAILBOX = {"look", "me", "us", "visit", "online", "site", "website", "is", "are", "was", "were", "it", "them",
                 "him", "her", "you", "go", "find", "check", "page", "be", "and", "or", "the", "a", "an", "to", "of",
                 "in", "on", "home", "work", "this", "that", "there", "here", "email", "e-mail", "address"}
TLD = r"(?:com|org|net|edu|gov|io|co|uk|us|de|fr|ca|au|info|biz|me|ie|nl)"
WRITTEN_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
DOTTED_ADDRESS = re.compile(rf"(?!www\.)[a-z0-9_+-]+(?:\.[a-z0-9_+-]+){{2,}}\.{TLD}", re.I)
"""Whisper often drops the "at": "john dot smith at example dot com" -> "john.smith.example.com"."""
DOMAIN = re.compile(rf"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.{TLD}", re.I)
NUMERIC = re.compile(r"[\d.,/-]*\d[\d.,/-]*")
PRICE_OR_TIME = re.compile(r"\d{1,4}[.,]\d{2}")
YEAR = re.compile(r"(?:19|20)\d\d")
EDGE = re.compile(r"^[^\w@$€£]+|[^\w]+$")
LABEL = re.compile(r"^\[[a-z_]+\]\W*$")
"""A word the redactor wrote (`[card]`, `[number]`, `[email]` or a pattern's name, maybe with punctuation)."""


def is_label(word: str) -> bool:
    return bool(LABEL.match(word))


def luhn(digits: str) -> bool:
    """The card number check digit (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


@dataclass
class _Line:
    """What a party's earlier final line leaves for the next: the digits of the run it ended with."""

    start: float
    end: float
    tail: str


class Redactor:
    """Redacts one call's transcripts; keeps each party's recent lines so that runs continue across them."""

    def __init__(self, cfg: RedactConfig):
        self.cfg = cfg
        self.patterns = [(f"[{name}]", re.compile(rx, re.I)) for name, rx in cfg.patterns.items()]
        self._lines: dict[str, list[_Line]] = {}

    def __call__(self, event: Transcript) -> Transcript:
        """The event with its text and words redacted (a new event; the raw one goes no further)."""
        if not self.cfg.enabled:
            return event
        try:
            return self._redact(event)
        except Exception:  # a bug here must neither end the call nor let the line out as it was
            log.exception("redaction failed; every digit and address in the line is redacted")
            tokens = event.text.split()
            chunks = [(w[0], k, k + 1) for k, w in enumerate(event.words)]
            return replace(event, text=" ".join(_render(tokens, _blunt([(t, k, k + 1) for k, t in enumerate(tokens)]))),
                           words=_render_words(event.words, chunks, _blunt(chunks)) if event.words else [])

    def _redact(self, event: Transcript) -> Transcript:
        carry = self._carry(event.party, event.start)
        tokens = event.text.split()
        spans, tail = self._find(tokens, carry, event.final)
        text = " ".join(_render(tokens, spans)) if spans else event.text
        words = event.words
        if words:
            chunks = _chunks([w[0] for w in words])
            wspans, _ = self._find([c for c, _, _ in chunks], carry, event.final)
            if [x[2] for x in wspans] != [x[2] for x in spans]:  # the words split otherwise than the text:
                chunks = [(w[0], k, k + 1) for k, w in enumerate(words)]  # be blunt rather than leak
                wspans = _blunt(chunks)
            if wspans:
                words = _render_words(words, chunks, wspans)
        if event.final:
            self._remember(event.party, _Line(event.start, event.end, tail))
        if text is event.text and words is event.words:
            return event
        return replace(event, text=text, words=words)

    # --- context across lines ---------------------------------------------------------------
    def _carry(self, party: str, start: float) -> str:
        """Digits of the run the party's previous line ended with, when it may go on in this one."""
        lines = [line for line in self._lines.get(party, []) if line.start < start]
        if lines and start - lines[-1].end <= self.cfg.run_window_s:
            return lines[-1].tail
        return ""

    def _remember(self, party: str, line: _Line) -> None:
        # A final replaces the party's earlier finals that start at or after its own start.
        kept = [x for x in self._lines.get(party, []) if x.start < line.start
                and line.start - x.end <= self.cfg.run_window_s]
        self._lines[party] = kept[-3:] + [line]

    # --- one line ---------------------------------------------------------------------------
    def _find(self, tokens: list[str], carry: str, final: bool) -> tuple[list[tuple[int, int, str]], str]:
        """Spans (first token, last token + 1, label) to redact, and the digits of the run ending the line."""
        labels: list[str | None] = [None] * len(tokens)
        tail = self._numbers(tokens, carry, final, labels)
        if self.cfg.emails:
            _emails(tokens, labels)
        if self.patterns:
            self._patterns(tokens, labels)
        spans, i = [], 0
        while i < len(tokens):
            if labels[i] is None:
                i += 1
                continue
            j = i
            while j + 1 < len(tokens) and labels[j + 1] == labels[i]:
                j += 1
            spans.append((i, j + 1, labels[i]))
            i = j + 1
        return spans, tail

    def _numbers(self, tokens: list[str], carry: str, final: bool, labels: list) -> str:
        norm = [_norm(t) for t in tokens]
        digits = _digit_tokens(norm)
        runs = _runs(norm, digits)
        lead = _lead_end(norm)
        only_digits = len(runs) == 1 and runs[0][0] == lead and _rest_is_filler(norm, runs[0][1])
        tail = ""
        for n, (a, b) in enumerate(runs):
            run = "".join(digits[k] or "" for k in range(a, b))
            continues = bool(carry) and n == 0 and a == lead
            whole = carry + run if continues else run
            at_end = _rest_is_filler(norm, b)
            if self._innocent(tokens, norm, digits, a, b, whole, continues):
                redact = False
            else:
                redact = (len(whole) >= self.cfg.min_digits
                          or (only_digits and len(run) >= 2)      # a piece of a number read in parts
                          or (not final and at_end))              # an interim may be cut mid-number
            if redact:
                label = "[card]" if len(whole) in CARD_DIGITS and luhn(whole) else "[number]"
                for k in range(a, b):
                    labels[k] = label
            if at_end:
                tail = whole
        for k, token in enumerate(norm):  # identifiers with letters: "AB1234567", "ID-4455-XY"
            if labels[k] is None and not digits[k] and sum(c.isdigit() for c in token) >= max(self.cfg.min_digits, 5):
                labels[k] = "[number]"
        return tail

    def _innocent(self, tokens, norm, digits, a, b, whole: str, continues: bool) -> bool:
        """A single written number that reads as a year, a price, a time or a quantity."""
        if continues or b - a != 1 or len(whole) in CARD_DIGITS:
            return False
        raw = EDGE.sub("", tokens[a])
        if YEAR.fullmatch(raw) or PRICE_OR_TIME.fullmatch(raw):
            return True
        after = norm[b] if b < len(norm) else ""
        return after in UNIT_WORDS

    def _patterns(self, tokens: list[str], labels: list) -> None:
        line, starts = "", []
        for token in tokens:
            starts.append(len(line))
            line += token + " "
        for label, rx in self.patterns:
            for m in rx.finditer(line):
                for k, s in enumerate(starts):
                    if s < m.end() and s + len(tokens[k]) > m.start():
                        labels[k] = labels[k] or label


# --- tokens ---------------------------------------------------------------------------------
def _norm(token: str) -> str:
    return EDGE.sub("", token.lower())


def _digit_tokens(norm: list[str]) -> list[str | None]:
    """The digits each token stands for (None: not a digit token). "to"/"too" count as 2 between single
    digits, "oh" as 0 only next to other digits, "double 9" as 99 (the digit is on the "double")."""
    out: list[str | None] = [None] * len(norm)
    for i, t in enumerate(norm):
        if NUMERIC.fullmatch(t):
            out[i] = re.sub(r"\D", "", t)
        elif t in DIGIT_WORDS and t not in ZERO_ONLY_IN_RUNS:
            out[i] = DIGIT_WORDS[t]
        elif t in TEENS:
            out[i] = TEENS[t]
        elif m := TENS_WORD.fullmatch(t):
            out[i] = TENS[m[1]] + (UNIT_OF[m[2]] if m[2] else "0")
    for i, t in enumerate(norm):  # "forty five": the unit belongs to the tens
        if t in TENS and i + 1 < len(norm) and norm[i + 1] in UNITS.values() and norm[i + 1] != "zero":
            out[i], out[i + 1] = out[i][0] + DIGIT_WORDS[norm[i + 1]], ""
    single = [d is not None and len(d) == 1 for d in out]
    for i, t in enumerate(norm):
        if t in REPEAT and i + 1 < len(norm) and (single[i + 1] or norm[i + 1] in ZERO_ONLY_IN_RUNS):
            d = out[i + 1] or "0"
            out[i], out[i + 1] = d * REPEAT[t], ""
    for i, t in enumerate(norm):
        near = [out[k] for k in (i - 1, i + 1) if 0 <= k < len(norm) and norm[k] not in ZERO_ONLY_IN_RUNS]
        if t in ZERO_ONLY_IN_RUNS and any(d for d in near if d is not None):
            out[i] = "0"
    for i, t in enumerate(norm):
        if t in TO_TWO and 0 < i < len(norm) - 1 and _one_digit(out, norm, i - 1, -1) \
                and _one_digit(out, norm, i + 1, 1):
            out[i] = "2"
    return out


def _one_digit(out, norm, i, step) -> bool:
    """Whether the digit token at i (or the "double" before it) says one digit or a repeat of one."""
    if out[i] == "" and step < 0 and i > 0 and norm[i - 1] in REPEAT:
        return True
    return out[i] is not None and (len(out[i]) == 1 or norm[i] in REPEAT)


def _runs(norm: list[str], digits: list) -> list[tuple[int, int]]:
    """Maximal stretches of digit tokens, with fillers allowed between them."""
    runs, i = [], 0
    while i < len(norm):
        if digits[i] is None:
            i += 1
            continue
        j = i + 1
        while j < len(norm):
            if digits[j] is not None:
                j += 1
                continue
            k = j
            while k < len(norm) and norm[k] in FILLERS and digits[k] is None:
                k += 1
            if k < len(norm) and k > j and digits[k] is not None:
                j = k
                continue
            break
        runs.append((i, j))
        i = j
    return runs


def _lead_end(norm: list[str]) -> int:
    i = 0
    while i < len(norm) and norm[i] in LEADS:
        i += 1
    return i


def _rest_is_filler(norm: list[str], b: int) -> bool:
    return all(t in LEADS for t in norm[b:])


def _emails(tokens: list[str], labels: list) -> None:
    norm = [_norm(t) for t in tokens]
    for i, t in enumerate(norm):
        if labels[i] is None and (WRITTEN_EMAIL.search(t) or DOTTED_ADDRESS.fullmatch(t)):
            labels[i] = "[email]"
    for i, t in enumerate(norm):
        if t not in ("at", "@") or i == 0:
            continue
        end = _domain_end(norm, i + 1)
        start = _mailbox_start(norm, i - 1)
        if end is not None and start is not None:
            for k in range(start, end):
                labels[k] = "[email]"


def _domain_end(norm: list[str], i: int) -> int | None:
    """The token after a domain that starts at token i (spoken "example dot com" or written
    "example.com"), or None when none starts there."""
    acc, j, best = "", i, None
    while j < len(norm) and re.fullmatch(r"[a-z0-9][a-z0-9.-]*", norm[j]):
        acc += norm[j]
        j += 1
        if DOMAIN.fullmatch(acc):
            best = j
        if j + 1 < len(norm) and norm[j] == "dot":
            acc += "."
            j += 1
            continue
        break
    return best


def _mailbox_start(norm: list[str], i: int) -> int | None:
    """Where the mailbox before an "at" starts: one word, extended back over "dot"/"underscore" joins."""
    if i < 0 or not re.fullmatch(r"[a-z0-9._+-]+", norm[i] or "-") or norm[i] in NOT_A_MAILBOX:
        return None
    while i >= 2 and norm[i - 1] in ("dot", "underscore", "dash", "hyphen") \
            and re.fullmatch(r"[a-z0-9._+-]+", norm[i - 2]):
        i -= 2
    return i


def _chunks(words: list[str]) -> list[tuple[str, int, int]]:
    """Whisper's words glued into the whitespace tokens of its text: "4", ".5", ".3" -> "4.5.3"
    (a word that starts with punctuation continues the one before)."""
    out: list[tuple[str, int, int]] = []
    for k, word in enumerate(words):
        if out and (word[:1] in ".-@_,/" and len(word) > 1 or out[-1][0].endswith("@")):
            text, a, _ = out[-1]
            out[-1] = (text + word, a, k + 1)
        else:
            out.append((word, k, k + 1))
    return out


def _blunt(chunks) -> list[tuple[int, int, str]]:
    """Every word with a digit or digit word as [number], with an "@" as [email]: the safety net when
    the words and the text disagree."""
    spans = []
    for k, (word, _, _) in enumerate(chunks):
        t = _norm(word)
        label = "[email]" if "@" in t else "[number]" if re.search(r"\d", t) or t in DIGIT_WORDS else None
        if label and spans and spans[-1][1] == k and spans[-1][2] == label:
            spans[-1] = (spans[-1][0], k + 1, label)
        elif label:
            spans.append((k, k + 1, label))
    return spans


def _render(tokens: list[str], spans) -> list[str]:
    out, i = [], 0
    for a, b, label in spans:
        out += tokens[i:a]
        out.append(label + _trailing(tokens[b - 1]))
        i = b
    return out + tokens[i:]


def _render_words(words: list, chunks, spans) -> list:
    """One word per redacted span, from its first word's start to its last word's end."""
    out, i = [], 0
    for a, b, label in spans:
        first, last = chunks[a][1], chunks[b - 1][2]
        out += words[i:first]
        out.append([label + _trailing(words[last - 1][0]), words[first][1], words[last - 1][2]])
        i = last
    return out + words[i:]


def _trailing(token: str) -> str:
    m = re.search(r"[.,?!;:]+$", token)
    return m.group() if m else ""
