"""Regenerate the bundled demo call (monitor/samples/demo_call.flac) with espeak-ng.

A support call that escalates and calms down again: dead air, the agent talking over an upset
customer, the agent raising their voice, a backchannel, then an apology and a plan.
"""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from synth import Turn, synth_call  # noqa: E402

TURNS = [
    Turn("agent", 0.5, "Thank you for calling Northwind support, this is Sam. How can I help you today?", -26),
    Turn("customer", 5.5, "Hi. I ordered a laptop three weeks ago and it still has not arrived. "
         "This is the third time I am calling about it.", -24),
    Turn("agent", 13.0, "I see. Let me look up your order.", -26),
    Turn("customer", 22.0, "Hello? Are you still there? This is ridiculous, I have been waiting for weeks "
         "and nobody tells me anything at all!", -17),
    Turn("agent", 25.0, "Yes, I am here, I was checking the system, and there is nothing I can do about the courier.", -26),
    Turn("customer", 33.0, "That is unacceptable. I want a refund or a replacement today.", -18),
    Turn("agent", 37.5, "Look, it is our policy, I cannot send a replacement until the courier confirms "
         "that the parcel is lost!", -15),
    Turn("customer", 40.0, "Right.", -22),
    Turn("agent", 46.5, "I am sorry, I understand how frustrating this is. What would work best for you?", -26),
    Turn("customer", 51.5, "Just send me the laptop, please.", -23),
    Turn("agent", 54.5, "I will send a replacement today and call you back within the hour with the tracking number. "
         "Does that work for you?", -26),
    Turn("customer", 62.5, "Okay, that works. Thank you.", -24),
    Turn("agent", 65.0, "Thank you for your patience. Have a good day.", -26),
]


def main() -> None:
    channels = synth_call(TURNS, bleed_db=-28, noise_dbfs=-66)
    out = ROOT / "monitor" / "samples" / "demo_call.flac"
    stereo = np.stack([channels["agent"], channels["customer"]], axis=1)
    sf.write(str(out), stereo, 16000, subtype="PCM_16")
    for turn in TURNS:
        print(f"{turn.party:<9} {turn.start:5.1f}-{turn.end:5.1f}  {turn.text}")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
