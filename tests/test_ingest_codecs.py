"""Telephony sample formats (audio/g711.py): μ-law against G.711's table, PCM16, 8 -> 16 kHz."""

import re
from pathlib import Path

import numpy as np
import pytest

from audio.g711 import (ULAW_TO_FLOAT, ULAW_TO_INT16, Upsampler, deinterleave, pcm16_decode,
                        ulaw_decode, ulaw_encode)

REFERENCE_ULAW = Path("/work/shared/peers/audiohook-client/dist/app/audiohook/src/audio/ulaw.js")

# Spot values of G.711 (ITU-T, table 2b): code word -> decoded linear value.
G711_POINTS = {0x00: -32124, 0x0F: -16764, 0x10: -15996, 0x70: -120, 0x7E: -8, 0x7F: 0,
               0x80: 32124, 0x8F: 16764, 0xF0: 120, 0xFE: 8, 0xFF: 0}


def test_ulaw_table_matches_g711_points():
    for code, value in G711_POINTS.items():
        assert ULAW_TO_INT16[code] == value, hex(code)
    # codes mirror: positive half is the negative half negated
    assert np.array_equal(ULAW_TO_INT16[128:], -ULAW_TO_INT16[:128])
    # monotonic within each half (codes count down in magnitude)
    assert np.all(np.diff(ULAW_TO_INT16[:128].astype(int)) > 0)
    assert np.all(np.diff(ULAW_TO_INT16[128:].astype(int)) < 0)


@pytest.mark.skipif(not REFERENCE_ULAW.exists(), reason="reference AudioHook client not present")
def test_ulaw_table_matches_the_reference_client():
    """The peer's own table; it decodes the negative zero (0x7F) as -1, G.711 says 0."""
    body = re.search(r"ulawToL16Lut = new Int16Array\(\[(.*?)\]\)", REFERENCE_ULAW.read_text(), re.S).group(1)
    ref = np.array([int(v) for v in body.split(",") if v.strip()])
    assert len(ref) == 256
    diff = np.flatnonzero(ref != ULAW_TO_INT16)
    assert diff.tolist() == [0x7F] and ref[0x7F] == -1


def test_ulaw_decode_is_float_in_range():
    out = ulaw_decode(bytes(range(256)))
    assert out.dtype == np.float32 and len(out) == 256
    assert np.array_equal(out, ULAW_TO_FLOAT)
    assert out.min() >= -1.0 and out.max() < 1.0
    assert out[0x80] == pytest.approx(32124 / 32768)


def test_ulaw_round_trip():
    codes = np.frombuffer(ulaw_encode(ULAW_TO_INT16), np.uint8)
    # every code word survives decode -> encode, except the negative zero, which encodes as +0
    assert np.array_equal(codes[codes != 0xFF], np.delete(np.arange(256), [0x7F, 0xFF]))
    x = np.arange(-32768, 32768)
    back = ULAW_TO_INT16[np.frombuffer(ulaw_encode(x), np.uint8)].astype(int)
    small = np.abs(x) < 32000
    # quantisation error is at most half a step; steps double every segment (2..1024)
    step = 2 ** (np.clip(np.floor(np.log2(np.abs(x[small]) + 132)).astype(int) - 7, 0, 7) + 3)
    assert np.all(np.abs(back[small] - x[small]) <= step // 2 + 1)
    # float input is scaled by full scale
    assert ulaw_encode(np.array([0.5], np.float32)) == ulaw_encode(np.array([16384]))


def test_pcm16_both_byte_orders_and_whole_samples():
    values = np.array([0, 1, -1, 32767, -32768], np.int16)
    le = pcm16_decode(values.astype("<i2").tobytes())
    be = pcm16_decode(values.astype(">i2").tobytes(), big_endian=True)
    assert np.array_equal(le, be)
    assert le.tolist() == pytest.approx([0, 1 / 32768, -1 / 32768, 32767 / 32768, -1.0])
    with pytest.raises(ValueError, match="not a whole number"):
        pcm16_decode(b"\x00\x01\x02")


def test_deinterleave_stereo():
    frames = deinterleave(np.arange(6, dtype=np.float32), 2)
    assert frames[:, 0].tolist() == [0, 2, 4] and frames[:, 1].tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match="2-channel"):
        deinterleave(np.arange(5, dtype=np.float32), 2)


def test_upsampler_streams_to_exact_length_and_keeps_a_tone():
    rate, n = 8000, 8000
    t = np.arange(n) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)], 1)
    up = Upsampler(rate, 2)
    chunks = [up.push(stereo[i:i + 160]) for i in range(0, n, 160)] + [up.finish()]
    out = np.concatenate(chunks)
    assert out.shape == (2 * n, 2) and out.dtype == np.float32
    whole = Upsampler(rate, 2)
    ref = np.concatenate([whole.push(stereo), whole.finish()])
    assert np.allclose(out, ref, atol=1e-5)  # chunking changes nothing
    mid = out[4000:28000]
    for ch, freq, amp in ((0, 440, 0.5), (1, 1000, 0.25)):
        spectrum = np.abs(np.fft.rfft(mid[:, ch]))
        assert np.argmax(spectrum) * 16000 / len(mid) == pytest.approx(freq, abs=2)
        assert np.sqrt(np.mean(mid[:, ch] ** 2)) == pytest.approx(amp / np.sqrt(2), rel=0.02)


def test_upsampler_passes_16k_through():
    up = Upsampler(16000, 2)
    block = np.ones((10, 2), np.float32)
    assert np.array_equal(up.push(block), block) and up.finish().shape == (0, 2)
