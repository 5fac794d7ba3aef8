"""Config values out of range: one line naming the key and its range, exit 2, no traceback.
Real config files, the real command."""

import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from conftest import calmline
from monitor.config import NONEMPTY, RANGES, Config, load_config
from monitor.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def numbers(obj, prefix=""):
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from numbers(value, f"{prefix}{f.name}.")
        elif type(value) in (int, float):
            yield f"{prefix}{f.name}", value


def test_every_number_has_a_range_that_holds_its_default():
    found = dict(numbers(Config()))
    assert set(found) == set(RANGES), "a number without a range (or a range without a key)"
    for name, default in found.items():
        lo, hi = RANGES[name]
        assert lo <= default <= hi, name


def test_config_toml_gives_each_range_beside_its_key():
    section, documented = "", {}
    for line in (ROOT / "config.toml").read_text().splitlines():
        if m := re.match(r"^\[([\w.]+)\]", line):
            section = m.group(1)
        elif m := re.match(r"^(\w+) = [-\d.e+]+\s+# (-?[\d.e+]+)\.\.(-?[\d.e+]+)$", line):
            documented[f"{section}.{m.group(1)}"] = (float(m.group(2)), float(m.group(3)))
    assert documented == {k: (float(lo), float(hi)) for k, (lo, hi) in RANGES.items()}


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("cfg") / "call.wav"
    sf.write(path, np.zeros((16000, 2), np.float32), 16000)
    return path


@pytest.mark.parametrize("toml, line", [
    ("[vad]\nthreshold = 5.0\n", "[vad] threshold = 5.0 is out of range 0..1"),
    ("[vad]\nthreshold = nan\n", "[vad] threshold = nan is out of range 0..1"),
    ("[vad]\nthreshold = inf\n", "[vad] threshold = inf is out of range 0..1"),
    ("[vad]\nthreshold = -inf\n", "[vad] threshold = -inf is out of range 0..1"),
    ("[vad]\nmin_speech_s = 1e308\n", "[vad] min_speech_s = 1e+308 is out of range 0..5"),
    ("[transcription]\nbeam_size = 0\n", "[transcription] beam_size = 0 is out of range 1..20"),
    ("[loudness]\nlevels_every_s = 0\n", "[loudness] levels_every_s = 0.0 is out of range 0.05..10"),
    ("[transcription]\npartial_every_s = 0.0\n", "[transcription] partial_every_s = 0.0 is out of range 0.1..60"),
    ("[cues.dead_air]\nsilence_s = 0\n", "[cues.dead_air] silence_s = 0.0 is out of range 0.5..600"),
    ("[cues.pause_first]\ncount = 0\n", "[cues.pause_first] count = 0 is out of range 1..100"),
    ("[cues.own_the_problem]\nphrases = []\n", "[cues.own_the_problem] phrases must not be empty"),
    ("[cues.acknowledge]\nfrustration = []\n", "[cues.acknowledge] frustration must not be empty"),
    ("[cues.acknowledge]\nacknowledgements = [\"  \"]\n", "[cues.acknowledge] acknowledgements must not be empty"),
])
def test_out_of_range_is_one_line_naming_key_and_range(call, tmp_path, toml, line):
    config = tmp_path / "config.toml"
    config.write_text(toml)
    run = calmline("--config", config, "analyze", call, "--no-transcribe", "--no-record")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (only,) = run.stderr.strip().splitlines()
    assert only.startswith(f"calmline: error: {config}: {line}")


def test_the_edges_of_a_range_are_accepted(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[vad]\nthreshold = 1.0\nneg_threshold = 0\n[transcription]\nbeam_size = 20\n")
    loaded = load_config(config)
    assert (loaded.vad.threshold, loaded.vad.neg_threshold, loaded.transcription.beam_size) == (1.0, 0.0, 20)
    config.write_text("[cues.acknowledge]\nenabled = false\nfrustration = [\"ridiculous\"]\n")
    assert load_config(config).cues.acknowledge.frustration == ["ridiculous"]
    assert NONEMPTY <= {f"cues.{name}" for name in ("own_the_problem.phrases", "acknowledge.frustration",
                                                    "acknowledge.acknowledgements")}
    with pytest.raises(UsageError, match="out of range"):
        config.write_text("[hub]\nport = 70000\n")
        load_config(config)
