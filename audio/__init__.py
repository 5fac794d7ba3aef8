"""Signal in, numbers out: decoding, framing, resampling, voice activity, loudness.

This package knows nothing of calls, parties or cues; it deals in channels and samples.
"""

SAMPLE_RATE = 16000
"""Every analysis runs at 16 kHz mono per channel (what Silero VAD and Whisper expect)."""

HOP = 512
"""Samples per analysis frame (32 ms): the window size Silero VAD v5/v6 takes at 16 kHz."""
