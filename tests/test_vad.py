import numpy as np

from audio import HOP
from audio.vad import SileroVad
from monitor.config import Config
from monitor.analysis.party import PartyTrack
from synth import speak


def frames(x):
    return x[: len(x) // HOP * HOP].reshape(-1, HOP)


def probs(x):
    vad = SileroVad()
    return np.array([vad(f) for f in frames(x)])


def test_silero_hears_speech_and_not_noise():
    speech = speak("Thank you for calling, how can I help you today?", level_dbfs=-24)
    noise = np.random.default_rng(1).normal(0, 0.05, 3 * 16000).astype(np.float32)
    assert np.mean(probs(speech) > 0.5) > 0.6
    assert np.mean(probs(noise) > 0.5) < 0.05


def test_the_recurrent_state_is_carried_from_frame_to_frame_and_reset_forgets_it():
    speech = speak("Let me check that order for you.", level_dbfs=-24)
    streamed = probs(speech)
    alone = []  # each frame heard by a model that has heard nothing before it but the frame's context
    previous = np.zeros(HOP, np.float32)
    for f in frames(speech):
        vad = SileroVad()
        vad.context(previous)
        alone.append(vad(f))
        previous = f
    assert np.max(np.abs(streamed[1:] - np.array(alone[1:]))) > 0.05, "no state carried between frames"
    assert streamed[0] == alone[0]

    vad = SileroVad()
    noise = np.random.default_rng(4).normal(0, 0.1, 2 * 16000).astype(np.float32)
    for f in frames(noise):
        vad(f)
    heard_noise = np.array([vad(f) for f in frames(speech)])
    assert not np.allclose(heard_noise, streamed), "what came before should matter"
    vad.reset()
    assert np.array_equal([vad(f) for f in frames(speech)], streamed), "reset() must forget everything"


def run_track(own, other):
    """Voiced flags of a party whose channel is `own`, with `other` on the other channel."""
    cfg = Config()
    a, b = PartyTrack("a", cfg), PartyTrack("b", cfg)
    flags = []
    for k, (fa, fb) in enumerate(zip(frames(own), frames(other))):
        a.level(fa)
        b.level(fb)
        a.step(k, fa, b)
        b.step(k, fb, a)
        flags.append(a.voiced)
    return np.array(flags)


def test_bleed_20_to_30_db_down_is_not_speech():
    speech = speak("I have been waiting for three weeks and nobody has called me back.", level_dbfs=-20)
    for down in (20, 25, 30):
        bleed = speech * 10 ** (-down / 20)
        assert run_track(bleed, speech).sum() == 0, f"bleed {down} dB down counted as speech"


def test_own_speech_over_the_other_party_is_still_speech():
    other = speak("I have been waiting for three weeks and nobody has called me back.", level_dbfs=-20)
    own = speak("I am so sorry, let me fix that for you right now.", level_dbfs=-24)
    own = np.pad(own, (0, max(0, len(other) - len(own))))[: len(other)]
    assert run_track(own + other * 0.05, other).mean() > 0.5


def test_noise_floor_alone_is_not_speech():
    noise = np.random.default_rng(2).normal(0, 10 ** (-45 / 20), 5 * 16000).astype(np.float32)
    quiet = np.zeros_like(noise)
    assert run_track(noise, quiet).sum() == 0
