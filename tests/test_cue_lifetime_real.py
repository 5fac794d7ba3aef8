"""Issue 12 item 4 on a real call: pyannote's two-speaker telephone sample (a calm request; nobody speaks
for its first 6.7 s), each speaker routed to a channel by its RTTM and written as an 8 kHz stereo WAV, as a
phone line gives it. Its opening silence used to be cued "Keep them informed" 5 s in."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from audio import SAMPLE_RATE
from audio.decode import read_audio
from monitor.analysis.pipeline import run_channels
from monitor.config import Config
from monitor.events import Cue, CueEnd, Stats

SPEAKERS = {"agent": "speaker90", "customer": "speaker91"}


@pytest.fixture(scope="module")
def call_8k(real_data, tmp_path_factory):
    audio = read_audio(real_data / "pyannote" / "sample.wav")[:, 0]
    turns = [(f[7], float(f[3]), float(f[3]) + float(f[4]))
             for f in (line.split() for line in (real_data / "pyannote" / "sample.rttm").read_text().splitlines())]
    channels = []
    for speaker in SPEAKERS.values():
        mask = np.zeros(len(audio), np.float32)
        for who, start, end in turns:
            if who == speaker:
                mask[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] = 1.0
        channels.append(audio * mask)
    path = tmp_path_factory.mktemp("real") / "call-8k.wav"
    sf.write(str(path), soxr.resample(np.stack(channels, axis=1), SAMPLE_RATE, 8000), 8000, subtype="PCM_16")
    assert sf.info(str(path)).samplerate == 8000
    stereo = read_audio(path)  # decoded back to the pipeline's 16 kHz, as `calmline analyze` does
    first = min(start for _, start, _ in turns)
    return first, {party: stereo[:, i] for i, party in enumerate(SPEAKERS)}


def test_the_opening_silence_of_a_real_8khz_call_is_not_dead_air(call_8k):
    first, channels = call_8k
    config = Config()
    assert first > config.cues.dead_air.silence_s  # the opening silence is long enough to have been cued
    events = run_channels(channels, config, transcribe=False)
    first_talk = min(e.t for e in events if e.type == "talk_start")
    assert first_talk == pytest.approx(first, abs=0.5)
    early = [e for e in events if isinstance(e, Cue) and e.t < first_talk + 1.0]
    assert early == []
    assert not [e for e in events if isinstance(e, Cue) and e.kind == "dead_air"]  # a brisk call: none at all


def test_every_cue_of_the_real_call_ends_and_stats_follow_it(call_8k):
    _, channels = call_8k
    events = run_channels(channels, transcribe=False)
    cues = [e for e in events if isinstance(e, Cue)]
    ends = [e for e in events if isinstance(e, CueEnd)]
    stats = [e for e in events if isinstance(e, Stats)]
    assert len(stats) >= 29  # about one a second over 30 s
    for cue in cues:  # each goes down again, or is up when the call ends
        later = [e for e in ends if e.kind == cue.kind and e.t > cue.t]
        assert later or cue.kind in stats[-1].cues, cue
    talk = {p: sum(e.t - e.start for e in events if e.type == "talk_end" and e.party == p) for p in SPEAKERS}
    assert stats[-1].share == pytest.approx(talk["agent"] / sum(talk.values()), abs=0.05)
