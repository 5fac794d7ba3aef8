"""What the cue rules see of a call at one tick: plain values, not the pipeline's objects.

A rule that reads only a view can be tested by handing it views, and cannot reach into (or depend
on the insides of) the party tracks, the conversation or the speech stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audio import HOP, SAMPLE_RATE


@dataclass(slots=True)
class PartyView:
    """One party at this tick. Levels in dBFS; `short_db` and `baseline_db` are None until measured."""

    level_db: float = -120.0          # momentary level (the meters' window)
    short_db: float | None = None     # short-term level of this party's voice ([loudness] short_term_s)
    baseline_db: float | None = None  # this party's own usual level, learned from calm speech
    baseline_s: float = 0.0           # how much voice the baseline has been learned from
    voiced: bool = False              # this tick's frame is this party's voice
    talking: bool = False             # inside a talk spurt (voice with its short pauses)
    spurt_start: float | None = None  # when the open spurt began
    wpm: float | None = None          # recent pace, from final transcripts
    recent_talk_s: float = 0.0        # talk time the recent pace is measured over

    @property
    def rise_db(self) -> float | None:
        """How far the short-term level stands above the party's own baseline, once both are known."""
        if self.short_db is None or self.baseline_db is None:
            return None
        return self.short_db - self.baseline_db


@dataclass(slots=True)
class CallView:
    """The call at audio time `t`: both parties, the current silence, and the events of this tick.

    `frustration` is (when, why) if the customer sounded frustrated in this tick: worked out once per
    tick (by `cues.Frustration`) for every rule that cares.
    """

    t: float
    parties: dict[str, PartyView]
    silence_start: float | None = None
    events: list = field(default_factory=list)
    frustration: tuple[float, str] | None = None
    frame_s: float = HOP / SAMPLE_RATE
    last_speaker: str | None = None
    """Who finished a talk spurt last; None before anyone has (a call's opening silence is not dead air)."""
