"""Live capture end to end: a private PulseAudio server, a WAV played into its null sink with paplay,
captured through sounddevice's `pulse` device. Real devices, real time, no mocks."""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from audio import SAMPLE_RATE
from audio.devices import (CAPTURE_DOC, CaptureOptions, CaptureStatus, DeviceCapture, Input, capture_hint,
                           format_devices, list_devices)
from audio.errors import AudioError
from audio.sources import Frame
from conftest import ROOT, calmline
from pulse import pulse, pulse_server  # noqa: F401  (session fixture)

OPTIONS = CaptureOptions(block_s=0.1, retry_s=0.3)
STEREO = [Input("pulse", 0, "agent"), Input("pulse", 1, "customer")]


class Recorder:
    """Everything a capture yielded, with checks for the timeline."""

    def __init__(self, capture: DeviceCapture):
        self.capture = capture
        self.frames: dict[str, list[Frame]] = defaultdict(list)
        self.statuses: list[CaptureStatus] = []

    def until(self, done, timeout: float, what: str) -> None:
        """Read until done(item) is true for a yielded item; fail after `timeout` seconds."""
        for item in self.capture.read(timeout=timeout):
            (self.frames[item.channel] if isinstance(item, Frame) else self.statuses).append(item)
            if done(item):
                return
        pytest.fail(f"no {what} within {timeout} s; statuses: {self.statuses}")

    def read_for(self, seconds: float) -> None:
        for item in self.capture.read(timeout=seconds):
            (self.frames[item.channel] if isinstance(item, Frame) else self.statuses).append(item)

    def states(self, label: str) -> list[str]:
        return [s.state for s in self.statuses if s.label == label]

    def audio(self, label: str, since: int = 0) -> np.ndarray:
        return np.concatenate([f.samples for f in self.frames[label] if f.start >= since])

    def assert_continuous(self) -> None:
        for label, frames in self.frames.items():
            starts = [f.start for f in frames]
            ends = [f.start + len(f.samples) for f in frames]
            assert starts[0] == 0 and starts[1:] == ends[:-1], f"{label}: gap or overlap in the timeline"
            assert all(f.samples.dtype == np.float32 and f.samples.ndim == 1 for f in frames)


def status(label: str, state: str):
    return lambda item: isinstance(item, CaptureStatus) and item.label == label and item.state == state


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def tone_wav(path, seconds: float = 3.0, rate: int = 48000):
    """1 kHz on the left (agent), 440 Hz on the right (customer)."""
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * 1000 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], 1), rate)
    return path


def test_list_devices_shows_pulse(pulse):
    devs = list_devices()
    names = [d["name"] for d in devs]
    assert "pulse" in names
    assert all(d["channels"] > 0 and d["samplerate"] > 0 for d in devs)
    table = format_devices(devs)
    assert "pulse" in table and "ALSA" in table


def test_stereo_device_gives_each_label_its_channel(pulse, tmp_path):
    wav = tone_wav(tmp_path / "tones.wav")
    with DeviceCapture(STEREO, OPTIONS) as capture:
        rec = Recorder(capture)
        rec.until(status("customer", "ok"), 10, "audio from the pulse device")
        player = pulse.play(wav)
        try:
            rec.until(lambda item: player.poll() is not None, 10, "end of playback")
            rec.read_for(0.5)
        finally:
            player.kill()
            player.wait()
    rec.assert_continuous()
    assert set(rec.frames) == {"agent", "customer"}
    assert "lost" not in rec.states("agent") + rec.states("customer")
    agent, customer = rec.audio("agent"), rec.audio("customer")
    assert np.sqrt(np.mean(agent ** 2)) > 0.05 and np.sqrt(np.mean(customer ** 2)) > 0.05
    assert abs(dominant_hz(agent) - 1000) < 10
    assert abs(dominant_hz(customer) - 440) < 10


def test_missing_device_is_a_one_line_error(pulse):
    with pytest.raises(AudioError) as err:
        DeviceCapture([Input("no-such-device-xyz", 0, "agent")], OPTIONS).start()
    message = str(err.value)
    assert "no input device matching 'no-such-device-xyz'" in message and "\n" not in message


def test_channel_out_of_range_names_device_and_channel(pulse):
    with pytest.raises(AudioError) as err:
        DeviceCapture([Input("pulse", 99, "agent")], OPTIONS).start()
    assert "pulse" in str(err.value) and "99" in str(err.value) and "\n" not in str(err.value)


def test_lost_device_keeps_timeline_and_recovers(pulse, tmp_path):
    wav = tone_wav(tmp_path / "tones.wav", seconds=2.0)
    try:
        with DeviceCapture(STEREO, OPTIONS) as capture:
            rec = Recorder(capture)
            rec.until(status("customer", "ok"), 10, "audio from the pulse device")

            pulse.unload_sink()
            rec.until(status("customer", "lost"), 5, "'lost' status after unloading the sink")
            assert rec.states("agent")[-1] == "lost"
            lost_at = {label: frames[-1].start + len(frames[-1].samples) for label, frames in rec.frames.items()}
            # The timeline goes on in silence for every label: a consumer waiting on both never stalls.
            rec.until(lambda item: isinstance(item, Frame) and item.channel == "agent"
                      and item.start >= lost_at["agent"] + SAMPLE_RATE, 5, "silence frames while lost")
            for label in ("agent", "customer"):
                silence = rec.audio(label, since=lost_at[label])
                assert len(silence) >= SAMPLE_RATE // 2 and not silence.any()

            pulse.load_sink()
            rec.until(status("customer", "ok"), 10, "'ok' status after reloading the sink")
            assert rec.states("agent")[-1] == "ok"
            resumed = rec.frames["agent"][-1].start
            player = pulse.play(wav)
            try:
                rec.until(lambda item: isinstance(item, Frame) and item.channel == "agent"
                          and item.start > resumed and np.abs(item.samples).max() > 0.1, 8, "the tone after recovery")
            finally:
                player.kill()
                player.wait()
            rec.until(lambda item: isinstance(item, Frame) and item.channel == "customer"
                      and item.start >= rec.frames["agent"][-1].start, 3, "customer catching up")
        rec.assert_continuous()
        assert abs(dominant_hz(rec.audio("agent", since=resumed)) - 1000) < 10
    finally:
        if "callsink" not in pulse.pactl("list", "short", "sinks"):
            pulse.load_sink()


def test_hung_server_never_blocks_the_consumer(pulse):
    """A frozen sound server blocks PortAudio's abort and open; reading must go on regardless."""
    with DeviceCapture(STEREO, OPTIONS) as capture:
        rec = Recorder(capture)
        rec.until(status("customer", "ok"), 10, "audio from the pulse device")
        pulse.freeze()
        try:
            rec.until(status("customer", "lost"), 5, "'lost' status while the server is frozen")
            end = rec.frames["customer"][-1].start + len(rec.frames["customer"][-1].samples)
            rec.until(lambda item: isinstance(item, Frame) and item.channel == "customer"
                      and item.start >= end + SAMPLE_RATE, 5, "silence frames while the server is frozen")
        finally:
            pulse.thaw()
        rec.until(status("customer", "ok"), 10, "'ok' status after the server wakes")
    rec.assert_continuous()


# --- docs/capture.md: its routing, run against a real PulseAudio ----------------------------------

def capture_doc_commands() -> list[str]:
    """The pactl lines of docs/capture.md's routing block (the one marked capture-routing)."""
    text = (ROOT / "docs" / "capture.md").read_text()
    block = text.split("<!-- capture-routing", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("pactl ")]


def test_the_documented_routing_gives_agent_left_and_customer_right(tmp_path):
    """docs/capture.md's five pactl lines, word for word, on a private PulseAudio with a headset (a sink's
    monitor stands in for its microphone) and speakers: calmline's stereo input then has the headset on
    channel 0 and the call on channel 1, each without the other."""
    commands = capture_doc_commands()
    assert len(commands) == 5
    with pulse_server() as server:
        server.pactl("unload-module", "module-null-sink")  # the doc makes its own callsink
        server.pactl("load-module", "module-null-sink", "sink_name=speakers")
        server.pactl("load-module", "module-null-sink", "sink_name=headset", "channels=1")
        server.pactl("set-default-sink", "speakers")
        env = {**os.environ, **server.env, "MIC": "headset.monitor"}
        for command in commands:
            done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=10)
            assert done.returncode == 0, (command, done.stderr)
        sinks = server.pactl("list", "short", "sinks")
        assert "callsink" in sinks and "calmline" in sinks
        os.environ["PULSE_SOURCE"] = "calmline.monitor"  # as the doc runs calmline live
        agent_wav = mono_tone(tmp_path / "agent.wav", 1000)
        call_wav = mono_tone(tmp_path / "call.wav", 440)
        with DeviceCapture(STEREO, OPTIONS) as capture:
            rec = Recorder(capture)
            rec.until(status("customer", "ok"), 10, "audio from calmline.monitor")
            players = [subprocess.Popen(["paplay", "--device=headset", str(agent_wav)], env=env),
                       subprocess.Popen(["paplay", "--device=callsink", str(call_wav)], env=env)]
            try:
                rec.until(lambda item: all(p.poll() is not None for p in players), 15, "end of playback")
            finally:
                for player in players:
                    player.kill()
                    player.wait()
        agent, customer = rec.audio("agent")[SAMPLE_RATE:], rec.audio("customer")[SAMPLE_RATE:]
        assert abs(dominant_hz(agent) - 1000) < 10 and abs(dominant_hz(customer) - 440) < 10
        for mine, other, hz in ((agent, customer, 1000), (customer, agent, 440)):
            assert band_rms(mine, hz) > 0.05 and band_rms(other, hz) < band_rms(mine, hz) / 30  # no crosstalk


def test_an_asoundrc_entry_makes_a_monitor_a_device_of_its_own(tmp_path):
    """docs/capture.md's two-device route: a pcm of type pulse on callsink.monitor, listed and opened."""
    text = (ROOT / "docs" / "capture.md").read_text()
    entry = next(line for line in text.splitlines() if line.startswith("pcm.callmonitor"))
    (tmp_path / ".asoundrc").write_text(entry + "\n")
    with pulse_server() as server:
        env = {**os.environ, **server.env, "HOME": str(tmp_path)}
        env.pop("PULSE_SOURCE", None)
        listed = calmline("devices", env=env)
        assert listed.returncode == 0 and "callmonitor" in listed.stdout
        assert "capture.md" not in listed.stdout  # pulse is there: nothing to point to
        check = calmline("live", "--check", "--agent-device", "pulse", "--customer-device", "callmonitor", env=env)
        assert check.returncode == 0 and "customer=callmonitor:0" in check.stdout, check.stderr


def test_devices_points_to_the_capture_doc_when_nothing_can_carry_a_call():
    assert "docs/capture.md" in capture_hint([]) or str(CAPTURE_DOC) in capture_hint([])
    assert CAPTURE_DOC.is_file() and "WASAPI" in CAPTURE_DOC.read_text() and "BlackHole" in CAPTURE_DOC.read_text()
    mic = {"index": 0, "name": "USB Headset: Audio (hw:1,0)", "hostapi": "ALSA", "channels": 1,
           "samplerate": 48000.0, "default": True}
    assert "none of these inputs" in capture_hint([mic])
    for name in ("pulse", "Monitor of Built-in Audio", "BlackHole 2ch", "CABLE Output (VB-Audio Virtual Cable)",
                 "Speakers [Loopback]"):
        assert capture_hint([mic, {**mic, "name": name}]) is None, name


def mono_tone(path, hz: float, seconds: float = 3.0, rate: int = 48000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), rate)
    return path


def band_rms(x: np.ndarray, hz: float) -> float:
    """RMS of x within 30 Hz of `hz`."""
    spectrum = np.fft.rfft(x * np.hanning(len(x)))
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    band = np.abs(spectrum[np.abs(freqs - hz) < 30])
    return float(np.sqrt(2 * np.sum(band ** 2)) / np.sum(np.hanning(len(x))))
