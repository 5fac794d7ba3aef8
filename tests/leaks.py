"""What a leaked number looks like to the tests: runs of digits however written."""

import re

DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2", "three": "3",
               "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}


def digit_runs(text: str) -> list[str]:
    """Digits (written or as words, "double 8" as 88) joined across punctuation and fillers: more
    eager than the redactor, so that the tests catch what it misses."""
    runs, run, repeat = [], "", 1
    for token in re.findall(r"[a-z]+|\d+|\S", text.lower()):
        if token.isdigit() or token in DIGIT_WORDS:
            digits = token if token.isdigit() else DIGIT_WORDS[token]
            run += digits * repeat
            repeat = 1
        elif token in ("double", "triple"):
            repeat = 2 if token == "double" else 3
        elif not token.isalnum() or token in ("and", "uh", "um"):
            continue
        else:
            runs.append(run)
            run = ""
    return [r for r in runs + [run] if r]
