"""Clean stops: a call stopped at any moment (SIGTERM or SIGINT) ends as a call should: exit 0,
`call_end` sent, the call `ended` in the store, its audio playable. Real subprocesses, real signals."""

import numpy as np

from audio.sources import Frame
from monitor.analysis.pipeline import Pipeline


def test_finish_with_only_one_party_buffered_pads_the_other():
    """A stop can land after one party's block and before the other's: finish() must still close."""
    pipeline = Pipeline(transcribe=False)
    pipeline.start()
    assert pipeline.push(Frame("agent", 0, np.full(300, 0.1, np.float32))) == []
    events = pipeline.finish()
    assert events[-1].type == "call_end" and events[-1].t == pipeline.frame_s  # one padded tick
