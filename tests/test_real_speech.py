"""Real people: pyannote's two-speaker phone call, each speaker routed to a channel by its RTTM."""

import numpy as np
import pytest

from audio.decode import read_audio
from conftest import of_type
from monitor.analysis.pipeline import run_channels

SPEAKERS = {"agent": "speaker90", "customer": "speaker91"}


def read_rttm(path):
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        turns.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return turns


def reference_overlaps(turns):
    out = []
    for i, (sa, a0, a1) in enumerate(turns):
        for sb, b0, b1 in turns[i + 1 :]:
            if sa != sb and max(a0, b0) < min(a1, b1):
                out.append((max(a0, b0), min(a1, b1)))
    return sorted(out)


def route(audio, turns, speaker):
    mask = np.zeros(len(audio), np.float32)
    for s, start, end in turns:
        if s == speaker:
            mask[int(start * 16000) : int(end * 16000)] = 1.0
    return audio * mask


@pytest.fixture(scope="module")
def sample(real_data):
    audio = read_audio(real_data / "pyannote" / "sample.wav")[:, 0]
    turns = read_rttm(real_data / "pyannote" / "sample.rttm")
    channels = {party: route(audio, turns, spk) for party, spk in SPEAKERS.items()}
    return turns, run_channels(channels, transcribe=False)


def test_overlaps_are_found_within_0_3_s_of_the_reference(sample):
    turns, events = sample
    found = [(o.t, o.end) for o in of_type(events, "overlap")]
    # An overlap under 0.1 s is a turn switch at 32 ms frames: found when one party stops and the other starts there.
    switches = [(end.t, start.t) for end in of_type(events, "talk_end") for start in of_type(events, "talk_start")
                if start.party != end.party and abs(start.t - end.t) <= 0.3]
    reference = reference_overlaps(turns)
    assert len(reference) == 6
    for start, end in reference:
        candidates = found + (switches if end - start < 0.1 else [])
        assert any(abs(s - start) <= 0.3 and abs(e - end) <= 0.3 for s, e in candidates), \
            f"reference overlap {start:.2f}-{end:.2f} not found in {found}"
    assert len(found) == len(reference) - 1


def test_talk_time_matches_the_reference(sample):
    turns, events = sample
    for party, speaker in SPEAKERS.items():
        ref = sum(e - s for spk, s, e in turns if spk == speaker)
        talk = sum(e.t - e.start for e in of_type(events, "talk_end") if e.party == party)
        assert talk == pytest.approx(ref, rel=0.15)
