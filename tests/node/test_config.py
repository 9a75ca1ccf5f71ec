"""node.toml: every setting round-trips through save and load, sections included; typos are errors."""

from __future__ import annotations

import pytest

from medledger.errors import ConfigError
from node.config import AccessLogSettings, AnchorSettings, NodeConfig


def test_settings_and_sections_round_trip(tmp_path):
    config = NodeConfig(
        name="Hospital Q",
        data_dir=tmp_path,
        ledger_poll_interval=0.5,
        consent_head_max_age_ms=50,
        anchor=AnchorSettings(max_batch=100, max_wait_ms=50, confirmations=2),
        access_log=AccessLogSettings(max_batch=200, max_wait_ms=900),
    )
    config.save()
    assert NodeConfig.load(tmp_path) == config
    text = (tmp_path / "node.toml").read_text()
    assert "[anchor]" in text and "[access_log]" in text


def test_defaults_fill_missing_sections(tmp_path):
    (tmp_path / "node.toml").write_text('name = "Hospital R"\n')
    config = NodeConfig.load(tmp_path)
    assert config.access_log == AccessLogSettings() and config.anchor == AnchorSettings()


@pytest.mark.parametrize(
    "body, message",
    [
        ('name = "X"\nledger_pol_interval = 1\n', "unknown setting"),
        ('name = "X"\n[access_log]\nmax_wait = 5\n', "max_wait"),
        ('name = "X"\n[anchor]\nmax_batches = 5\n', "max_batches"),
    ],
)
def test_typos_are_errors(tmp_path, body, message):
    (tmp_path / "node.toml").write_text(body)
    with pytest.raises(ConfigError, match=message):
        NodeConfig.load(tmp_path)
