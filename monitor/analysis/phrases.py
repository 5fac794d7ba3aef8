"""Word cues that hear what was meant: readable phrases from config.toml matched against what the
speech model heard, allowing for how people say a thing and how tiny.en mishears it.

A phrase is words (case, punctuation and contractions do not matter: "there's" is "there is"):

    our policy          each word by its stem (policy/policies, handle/handled/handling), in this
                        order, with at most one other word between two of them ("our company policy")
    can|could           either word in this place
    [really]            a word that may be missing
    not ... able        up to four other words here
    {policy company}    these words in any order ("company policy", "policy of the company" with ...)
    !read you our       an innocent use: a match that shares a word with it says nothing (its words
                        are heard as written, next to each other unless ... says otherwise)

One word of a match (not the only one, at least four letters) may be misheard: it counts when it
starts with the same sound and its metaphone key is close ("come down" for "calm down"). Not in an
innocent use.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, replace

import jellyfish
import snowballstemmer
from rapidfuzz.distance import Levenshtein

GAP = 1
"""Other words allowed between two words of a phrase."""
WIDE_GAP = 4
"""... allows this many."""
MIN_FUZZY_LEN = 4
"""Shorter words ("our", "not") must be heard exactly: among short words a close sound is another word."""
SOUND_SIMILARITY = 0.6
"""Least normalized similarity of two metaphone keys for a misheard word (calm/come 0.67, refund/reference 0.6)."""

_CONTRACTIONS = [(r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"),
                 (r"\bain't\b", "is not"), (r"n't\b", " not"), (r"'re\b", " are"), (r"'ll\b", " will"),
                 (r"'ve\b", " have"), (r"'m\b", " am"), (r"'d\b", " would"), (r"\blet's\b", "let us"),
                 (r"\b(it|that|there|here|what|who|he|she|where|this)'s\b", r"\1 is"), (r"'s\b", "")]
_stemmer = snowballstemmer.stemmer("english")


def spoken(text: str) -> list[str]:
    """The words as said: lower case, apostrophes kept, other punctuation gone."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("\u2019", "'")).split()


@functools.lru_cache(maxsize=8192)
def _spelled_out(word: str) -> tuple:
    for pattern, repl in _CONTRACTIONS:
        word = re.sub(pattern, repl, word)
    return tuple(word.replace("'", "").split())


def tokens(text: str) -> list[tuple[str, int]]:
    """(word, index of the spoken word it came from), contractions spelled out ("there's": there, is)."""
    return [(w, i) for i, said in enumerate(spoken(text)) for w in _spelled_out(said)]


def words(text: str) -> list[str]:
    """Lower-case words with contractions spelled out and punctuation gone."""
    return [w for w, _ in tokens(text)]


@functools.lru_cache(maxsize=8192)
def stem(word: str) -> str:
    return _stemmer.stemWord(word)


@functools.lru_cache(maxsize=8192)
def _key(word: str) -> str:
    return jellyfish.metaphone(word)


@functools.lru_cache(maxsize=65536)
def sounds_like(heard: str, meant: str) -> bool:
    """Whether `heard` may be `meant` misheard: same first sound, close metaphone keys."""
    if len(meant) < MIN_FUZZY_LEN or len(heard) < 3:
        return False
    a, b = _key(heard), _key(meant)
    return bool(a and b) and a[0] == b[0] and Levenshtein.normalized_similarity(a, b) >= SOUND_SIMILARITY


@dataclass(frozen=True)
class Slot:
    """One place in a phrase: the stems that fill it, the words as written, and how far it may follow the last."""

    stems: frozenset
    written: tuple
    optional: bool = False
    gap: int = GAP


@dataclass(frozen=True)
class Pattern:
    phrase: str
    slots: tuple
    innocent: bool = False


@dataclass(frozen=True)
class Match:
    """Where a phrase was heard: word indices [start, end) of the line, the words heard there, and the
    word meant where one was misheard."""

    phrase: str
    start: int
    end: int
    misheard: str | None = None
    heard: str = ""

    def __str__(self) -> str:
        return self.heard + (f" ({self.misheard}?)" if self.misheard else "")

    def overlaps(self, other: "Match") -> bool:
        return self.start < other.end and other.start < self.end


_TOKEN = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\.\.\.|[^\s{}\[\]]+")


def parse(phrase: str) -> list[Pattern]:
    """The patterns of one phrase (several when it has {any order} words); ValueError saying what is wrong."""
    text = phrase.strip()
    innocent = text.startswith("!")
    text = text.lstrip("!").strip()
    if re.search(r"[{}\[\]]", _TOKEN.sub(" ", text)):
        raise ValueError(f'phrase "{phrase}": unbalanced brackets')
    groups: list[list[Slot]] = []  # each {...} is one group of slots to permute; other slots a group of one
    base = 0 if innocent else GAP  # an innocent use is said as written
    gap = base
    for token in _TOKEN.findall(text):
        if token == "...":
            gap = WIDE_GAP
            continue
        if token.startswith("{"):
            inner = [_slot(t, phrase, False, base) for t in token[1:-1].split()]
            if not 2 <= len(inner) <= 4:
                raise ValueError(f'phrase "{phrase}": {{...}} needs 2 to 4 words')
            groups.append(inner)
        elif token.startswith("["):
            groups.append([_slot(token[1:-1].strip(), phrase, True, gap)])
        elif "|" not in token and len(words(token)) > 1:  # a contraction: "i'd" is "i would"
            groups += [[_slot(w, phrase, False, gap if k == 0 else base)] for k, w in enumerate(words(token))]
        else:
            groups.append([_slot(token, phrase, False, gap)])
        gap = base
    if not any(not s.optional for g in groups for s in g):
        raise ValueError(f'phrase "{phrase}": needs at least one word that is not [optional]')
    patterns = []
    for order in itertools.product(*[itertools.permutations(g) if len(g) > 1 else [g] for g in groups]):
        patterns.append(Pattern(phrase.strip(), tuple(s for group in order for s in group), innocent))
    return patterns


def _slot(token: str, phrase: str, optional: bool, gap: int) -> Slot:
    alternatives = [" ".join(words(w)) for w in token.split("|")]
    if not token or any(not a or " " in a for a in alternatives):
        raise ValueError(f'phrase "{phrase}": "{token}" is not a word (or one-word choices joined by |)')
    return Slot(frozenset(stem(a) for a in alternatives), tuple(alternatives), optional, gap)


class PhraseSet:
    """A config list of phrases, compiled once; `find` a line's first match that is not an innocent use."""

    def __init__(self, phrases):
        self.patterns = [p for phrase in phrases if phrase.strip() for p in parse(phrase)]
        self.cues = [p for p in self.patterns if not p.innocent]
        self.innocent = [p for p in self.patterns if p.innocent]

    def find(self, text: str) -> Match | None:
        said = spoken(text)
        toks = tokens(text)
        heard = [w for w, _ in toks]
        stems = [stem(w) for w in heard]
        spared = [m for p in self.innocent for m in _matches(p, heard, stems)]
        for pattern in self.cues:
            for match in _matches(pattern, heard, stems):
                if not any(match.overlaps(s) for s in spared):
                    span = said[toks[match.start][1]:toks[match.end - 1][1] + 1]
                    return replace(match, heard=" ".join(span))
        return None

    def hotwords(self) -> str:
        """The phrases as plain words (each phrase's first form), for biasing the decoder toward them."""
        seen = {}
        for p in self.cues:
            seen.setdefault(p.phrase, " ".join(s.written[0] for s in p.slots if not s.optional))
        return ", ".join(dict.fromkeys(seen.values()))


def _matches(pattern: Pattern, heard: list[str], stems: list[str]):
    """Every place the pattern is heard, at most one word misheard (never the only word heard; never in
    an innocent use, which must be heard as written to silence anything)."""
    slots = pattern.slots
    needed = sum(not s.optional for s in slots) if not pattern.innocent else 0

    def extend(i: int, pos: int, start: int | None, fuzzy: str | None, exact: int):
        if i == len(slots):
            if start is not None and (fuzzy is None or exact >= 1):
                yield Match(pattern.phrase, start, pos, fuzzy)
            return
        slot = slots[i]
        if slot.optional:
            yield from extend(i + 1, pos, start, fuzzy, exact)
        first, last = (0, len(heard)) if start is None else (pos, min(len(heard), pos + slot.gap + 1))
        for j in range(first, last):
            if stems[j] in slot.stems:
                yield from extend(i + 1, j + 1, j if start is None else start, fuzzy, exact + 1)
            elif fuzzy is None and needed > 1 and not slot.optional:
                meant = next((w for w in slot.written if sounds_like(heard[j], w)), None)
                if meant:
                    yield from extend(i + 1, j + 1, j if start is None else start, meant, exact)

    seen = set()
    for match in extend(0, 0, None, None, 0):
        if (match.start, match.end) not in seen:
            seen.add((match.start, match.end))
            yield match


@functools.lru_cache(maxsize=64)
def phrase_set(phrases: tuple) -> PhraseSet:
    """One compiled set per distinct list (rules of every call share it)."""
    return PhraseSet(phrases)


def find(text: str, phrases) -> Match | None:
    return phrase_set(tuple(phrases)).find(text)


def check(phrases) -> str | None:
    """What is wrong with a list of phrases, or None (config validation)."""
    try:
        PhraseSet(phrases)
    except ValueError as exc:
        return str(exc)
    return None
