from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_config_toml_documents_exactly_the_defaults():
    assert load_config(ROOT / "config.toml") == Config()


def test_values_are_read_and_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[cues.dead_air]\nsilence_s = 8\nenabled = false\n[channels]\nagent = 1\ncustomer = 0\n")
    config = load_config(path)
    assert config.cues.dead_air.silence_s == 8.0 and not config.cues.dead_air.enabled
    assert (config.channels.agent, config.channels.customer) == (1, 0)
    path.write_text("[cues.dead_air]\nsilence_s = -1\n")
    with pytest.raises(UsageError, match=r"\[cues\.dead_air\] silence_s"):
        load_config(path)
    path.write_text("cues = 3\n")
    with pytest.raises(UsageError, match="must be a table"):
        load_config(path)
