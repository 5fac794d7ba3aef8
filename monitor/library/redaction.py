"""The recording's side of redaction: where a call's redacted words are, and its audio silenced over
them before it is written (or, when a redaction comes after its audio was written, when the call ends).

The pipeline has already redacted the text (monitor/analysis/redact.py); a redacted word keeps its
timing, so the words say where to silence. Both channels are silenced: each party's headset or line
carries the other's voice too (bleed). See docs/privacy.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio import SAMPLE_RATE
from audio.silence import HoldBack, silence_file

from ..analysis.redact import is_label


SCHEMA = """
CREATE TABLE IF NOT EXISTS redactions (
    call_id TEXT, party TEXT, start REAL, end REAL, label TEXT,
    silenced INTEGER        -- 1: the recording is silent from start to end (the words' times widened by the pad)
);
CREATE INDEX IF NOT EXISTS redactions_call ON redactions (call_id);
"""


def spans_of(transcript: dict, pad_s: float) -> list[tuple[str, float, float, str]]:
    """(party, start, end, label) of each redacted word of a final transcript event (the whole line when
    it has no word times), widened by `pad_s` and out to its neighbours: Whisper's word times are tight or early (a line's last word often ends
    0.4 s before the voice does), so a span reaches back to the previous word's end (the line's start
    for its first word) and on to the next word's start (the line's end for its last word)."""
    words = transcript.get("words") or []
    if not words and transcript.get("final", True):  # Whisper gives no word times for a one-word line ("1734.")
        labels = [w for w in transcript.get("text", "").split() if is_label(w)]
        if labels:
            return [(transcript["party"], round(max(0.0, transcript["start"] - pad_s), 3),
                     round(transcript["end"] + pad_s, 3), labels[0].rstrip(".,?!;:"))]
    out = []
    for k, (w, a, b) in enumerate(words):
        if not is_label(w):
            continue
        before = words[k - 1][2] if k else transcript["start"]
        after = words[k + 1][1] if k + 1 < len(words) else transcript["end"] + pad_s
        out.append((transcript["party"], round(max(0.0, min(a - pad_s, before)), 3), round(max(b + pad_s, after), 3),
                    w.rstrip(".,?!;:")))
    return out


class AudioRedaction:
    """Sits between a call's recorder and its FLAC writer: holds `hold_s` of audio back, silences the
    spans it is told about, and lists those that came too late for `repair()` after the writer closed."""

    def __init__(self, write, enabled: bool = True, hold_s: float = 15.0):
        self.enabled = enabled
        self.hold = HoldBack(write, int(hold_s * SAMPLE_RATE) if enabled else 0)

    def write(self, block: np.ndarray) -> None:
        self.hold.write(block)

    def silence(self, spans) -> None:
        if self.enabled:
            for _, a, b, _ in spans:
                self.hold.silence(round(a * SAMPLE_RATE), round(b * SAMPLE_RATE))

    def flush(self) -> None:
        self.hold.flush()

    def repair(self, path: Path) -> None:
        """Silence in the written file what came too late; if that fails, the file goes: a recording
        with a card number in it is worse than none."""
        if not self.hold.late:
            return
        try:
            silence_file(path, self.hold.late)
            self.hold.late = []
        except Exception:
            Path(path).unlink(missing_ok=True)
            raise


def silence_stored(path: Path, rows: list[tuple[float, float]]) -> None:
    """Silence a written recording over stored spans (a call mended after its recorder died)."""
    if rows and Path(path).exists():
        silence_file(path, [(round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)) for a, b in rows])
