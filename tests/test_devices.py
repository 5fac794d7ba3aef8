"""Live capture end to end: a private PulseAudio server, a WAV played into its null sink with paplay,
captured through sounddevice's `pulse` device. Real devices, real time, no mocks."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from audio import SAMPLE_RATE
from audio.devices import CaptureOptions, CaptureStatus, DeviceCapture, Input, format_devices, list_devices
from audio.errors import AudioError
from audio.sources import Frame
from pulse import pulse  # noqa: F401  (session fixture)

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
