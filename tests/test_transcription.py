"""Transcription with the bundled tiny.en model on real speech and synthesized calls; pace; word cues."""

import re
import time

import jiwer
import numpy as np
import pytest

from audio.decode import read_audio
from conftest import of_type
from monitor.config import Config, TranscriptionConfig
from monitor.errors import UsageError
from monitor.analysis.pipeline import run_channels
from monitor.library.report import final_lines
from monitor.analysis.transcriber import load_model
from synth import Turn, synth_call, turns_in_sequence


def normal(text):
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def wer(ref, hyp):
    return jiwer.wer(" ".join(normal(ref)), " ".join(normal(hyp)))


def transcribe_mono(audio, party="agent"):
    silent = np.zeros_like(audio)
    channels = {"agent": audio, "customer": silent} if party == "agent" else {"agent": silent, "customer": audio}
    return run_channels(channels)


def text_of(events, party):
    return " ".join(e.text for e in final_lines(events) if e.party == party)


def librivox(real_data):
    refs = {}
    for line in (real_data / "librivox" / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        refs[m.group(2)] = m.group(1)
    return [(real_data / "librivox" / f"{name}.wav", text) for name, text in sorted(refs.items())]


def test_jfk(real_data):
    events = transcribe_mono(read_audio(real_data / "whisper" / "jfk.flac")[:, 0])
    assert "ask not what your country can do for you" in " ".join(normal(text_of(events, "agent")))
    assert text_of(events, "customer") == ""


def test_librivox_word_error_rate_at_most_15_percent(real_data):
    refs, hyps = [], []
    for path, ref in librivox(real_data):
        events = transcribe_mono(read_audio(path)[:, 0])
        refs.append(ref)
        hyps.append(text_of(events, "agent"))
    assert wer(" ".join(refs), " ".join(hyps)) <= 0.15


def test_librivox_pace_within_10_percent_of_the_reference(real_data):
    for path, ref in librivox(real_data):
        audio = read_audio(path)[:, 0]
        events = transcribe_mono(audio)
        spurts = of_type(events, "talk_end")
        talk = sum(e.t - e.start for e in spurts)
        reference = 60 * len(ref.split()) / talk
        wpm = of_type(events, "call_end")[0].parties["agent"]["wpm"]
        assert wpm == pytest.approx(reference, rel=0.10), path.name


def test_each_channel_of_a_stereo_call_is_transcribed_to_its_own_text(real_data):
    folder = real_data / "faster-whisper"
    audio = read_audio(folder / "stereo_diarization.wav")
    events = run_channels({"agent": audio[:, 0], "customer": audio[:, 1]})
    left = (folder / "stereo_diarization.left.txt").read_text()
    right = (folder / "stereo_diarization.right.txt").read_text()
    assert wer(left, text_of(events, "agent")) <= 0.25
    assert wer(right, text_of(events, "customer")) <= 0.25


def test_a_bleed_only_channel_produces_no_transcript():
    turns = turns_in_sequence(("customer", "I have been waiting three weeks for my laptop and nobody calls me back."),
                              ("customer", "Can you please tell me where my order is right now?"))
    events = run_channels(synth_call(turns, bleed_db=-22, noise_dbfs=-60))
    assert text_of(events, "agent") == ""
    assert "laptop" in text_of(events, "customer")


def test_silence_and_noise_produce_no_words():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.003, 10 * 16000).astype(np.float32)
    events = run_channels({"agent": noise, "customer": np.zeros_like(noise)})
    assert of_type(events, "transcript") == []


FAST = "Okay so what I am going to do right now is check the courier system and then update the address and send you a confirmation email straight away."
SLOW_REPLY = "Okay. Thank you."


def pace_call(agent_wpm):
    specs = []
    for _ in range(3):
        specs += [("customer", "I would like to know where my order is please."), ("agent", FAST)]
    turns = []
    start = 0.5
    for party, text in specs:
        turn = Turn(party, start, text, wpm=agent_wpm if party == "agent" else 150)
        turns.append(turn)
        start = turn.end + 0.8
    return run_channels(synth_call(turns, bleed_db=-28))


def test_a_fast_agent_gets_slow_down_and_matched_paces_do_not():
    fast = pace_call(agent_wpm=260)
    assert "slow_down" in [c.kind for c in of_type(fast, "cue")]
    matched = pace_call(agent_wpm=150)
    assert "slow_down" not in [c.kind for c in of_type(matched, "cue")]
    pace = of_type(matched, "pace")[-1].wpm
    assert pace["agent"] == pytest.approx(pace["customer"], rel=0.25)


def test_a_deflecting_phrase_gets_own_the_problem():
    turns = turns_in_sequence(("customer", "Why can't you just send me a new one today?"),
                              ("agent", "There is nothing I can do, you will have to call the courier yourself."))
    events = run_channels(synth_call(turns, bleed_db=-28))
    cues = [c for c in of_type(events, "cue") if c.kind == "own_the_problem"]
    assert len(cues) == 1 and cues[0].t >= turns[1].end


def test_frustration_without_acknowledgement_gets_acknowledge_and_an_apology_prevents_it():
    def call(reply):
        turns = turns_in_sequence(("customer", "This is ridiculous, it is the third time I am calling about this."),
                                  ("agent", reply), ("agent", "The order number ends in four five six."), gap=1.0)
        turns.append(Turn("agent", turns[-1].end + 6.0, "Okay, I have updated the address."))
        return [c.kind for c in of_type(run_channels(synth_call(turns, bleed_db=-28)), "cue")]

    assert "acknowledge" in call("Let me pull up your account.")
    assert "acknowledge" not in call("I am so sorry about that, let me pull up your account.")


def test_a_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="not a CTranslate2 Whisper model directory"):
        load_model(str(tmp_path / "nowhere"))
    config = Config(transcription=TranscriptionConfig(model_dir=str(tmp_path)))
    with pytest.raises(UsageError, match="model.bin"):
        run_channels({"agent": np.zeros(16000, np.float32), "customer": np.zeros(16000, np.float32)}, config)


def test_a_worker_that_falls_behind_sheds_partials_and_keeps_every_final(real_data):
    from monitor.analysis.transcriber import Job, Worker, load_engine

    engine = load_engine("", "int8", 2, 1)
    audio = read_audio(real_data / "whisper" / "jfk.flac")[:, 0]
    worker = Worker(engine)
    results = []
    worker.register("c", results.append)
    with engine.lock:  # the model is busy: everything below queues up
        for i in range(10):
            worker.submit(Job(("c", "agent"), i, i + 1, audio[: 16000 * 2], final=False))
        for i in range(5):
            worker.submit(Job(("c", "customer"), i, i + 1, audio[: 16000 * 3], final=True))
        for i in range(10):
            worker.submit(Job(("c", "agent"), 20 + i, 21 + i, audio[: 16000 * 2], final=False))
    worker.drain()
    time.sleep(0.5)  # let the one surviving partial through
    worker.stop()
    finals = [r for r in results if r.job.final]
    partials = [r for r in results if not r.job.final]
    assert [r.job.start for r in finals] == [0, 1, 2, 3, 4]
    assert all("fellow americans" in r.text.lower() for r in finals)
    assert len(partials) <= 2 and worker.dropped_partials >= 18
