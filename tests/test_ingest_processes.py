"""How many worker processes `[ingest] processes` gives an ingest server (monitor/ingest/routes.py)."""

import os

from monitor.config import Config, IngestConfig
from monitor.ingest.routes import IngestPart


def processes(transcribe: bool, wanted: int = -1) -> int:
    return IngestPart(Config(ingest=IngestConfig(processes=wanted)), transcribe=transcribe).processes


def test_auto_is_one_per_core_without_transcription_and_none_with_it():
    assert processes(transcribe=False) == (os.cpu_count() or 1)
    assert processes(transcribe=True) == 0  # one model batching every call's lines measured better


def test_a_number_given_is_kept_either_way():
    assert processes(transcribe=True, wanted=2) == 2
    assert processes(transcribe=False, wanted=0) == 0
