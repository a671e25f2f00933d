from pathlib import Path

import pytest

from chrono.core.config import ChronoConfig, load_config
from chrono.core.errors import ConfigError


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHRONO_CONFIG", raising=False)
    assert load_config() == ChronoConfig()


def test_yaml_overrides_and_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONO_TZ", "Europe/London")
    cfg = tmp_path / "chrono.yaml"
    cfg.write_text(
        "evidence:\n  default_timezone: ${CHRONO_TZ}\n  batch_size: ${BATCH:-50}\n"
        "  limits:\n    max_pages: 10\n"
    )
    loaded = load_config(cfg)
    assert loaded.evidence.default_timezone == "Europe/London"
    assert loaded.evidence.batch_size == 50
    assert loaded.evidence.limits.max_pages == 10


def test_bad_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "chrono.yaml"
    cfg.write_text("evidence:\n  limits:\n    max_pagez: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "chrono.yaml" in err.value.detail
    assert "evidence.limits.max_pagez" in err.value.detail


def test_bad_type_and_missing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("evidence:\n  batch_size: lots\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(cfg)
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    cfg.write_text("data_dir: ${NOPE_NOT_SET}\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET"):
        load_config(cfg)
