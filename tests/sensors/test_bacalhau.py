"""Bacalhau job specs for edge nodes: structure, values, env, constraints and YAML round-trip."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from chrono.core.errors import ConfigError
from chrono.sensors.bacalhau import (
    ONCE_TIMEOUT_S,
    BacalhauConfig,
    bacalhau_job_spec,
    render_job_yaml,
)


def test_default_spec_structure_and_values() -> None:
    spec = bacalhau_job_spec(BacalhauConfig(), pipeline_config_path="/data/pipeline.yaml")
    assert list(spec) == ["Name", "Type", "Count", "Constraints", "Tasks"]
    assert (spec["Name"], spec["Type"], spec["Count"], spec["Constraints"]) == (
        "chrono-sensors", "ops", 1, [],
    )
    [task] = spec["Tasks"]
    assert task["Name"] == "sensors"
    assert task["Engine"]["Type"] == "docker"
    params = task["Engine"]["Params"]
    assert params["Image"] == "ghcr.io/chrono/chrono:latest"
    assert params["Entrypoint"] + params["Parameters"] == [
        "chrono", "sensors", "run", "--config", "/data/pipeline.yaml", "--once",
    ]
    assert params["EnvironmentVariables"] == ["CHRONO_DATA=/data"]
    assert task["InputSources"] == [{
        "Source": {"Type": "localDirectory", "Params": {"SourcePath": "/data", "ReadWrite": True}},
        "Target": "/data",
    }]
    assert task["Resources"] == {"CPU": "1", "Memory": "1Gb"}
    assert task["Timeouts"] == {"ExecutionTimeout": ONCE_TIMEOUT_S}
    assert task["Network"] == {"Type": "Full"}


def test_configured_values_env_and_constraints() -> None:
    config = BacalhauConfig(
        image="registry.local/chrono:1.2", job_name="plant-7-sensors", job_type="batch", count=3,
        node_selector={"site": "plant-7", "arch": "arm64"}, cpu="500m", memory="512Mb",
        env={"LOG_LEVEL": "DEBUG", "AWS_REGION": "eu-west-1", "QUOTED": "a=b c"},
        data_path="/srv/chrono/",
    )
    spec = bacalhau_job_spec(config, pipeline_config_path="/srv/chrono/pipeline.yaml")
    assert (spec["Name"], spec["Type"], spec["Count"]) == ("plant-7-sensors", "batch", 3)
    assert spec["Constraints"] == [
        {"Key": "arch", "Operator": "=", "Values": ["arm64"]},
        {"Key": "site", "Operator": "=", "Values": ["plant-7"]},
    ]
    [task] = spec["Tasks"]
    assert task["Engine"]["Params"]["EnvironmentVariables"] == [
        "AWS_REGION=eu-west-1", "CHRONO_DATA=/srv/chrono", "LOG_LEVEL=DEBUG", "QUOTED=a=b c",
    ]
    assert task["InputSources"][0]["Source"]["Params"]["SourcePath"] == "/srv/chrono"
    assert task["InputSources"][0]["Target"] == "/srv/chrono"
    assert task["Resources"] == {"CPU": "500m", "Memory": "512Mb"}
    env = task["Engine"]["Params"]["EnvironmentVariables"]
    assert not any(v.startswith("BACALHAU_") for v in env)


def test_continuous_jobs_run_without_once_or_timeout() -> None:
    config = BacalhauConfig(job_type="daemon")
    spec = bacalhau_job_spec(config, pipeline_config_path="/data/pipeline.yaml", once=False)
    [task] = spec["Tasks"]
    assert "--once" not in task["Engine"]["Params"]["Parameters"]
    assert task["Timeouts"] == {"ExecutionTimeout": 0}
    with pytest.raises(ConfigError, match="--once"):
        bacalhau_job_spec(config, pipeline_config_path="/data/pipeline.yaml")
    with pytest.raises(ConfigError, match="pipeline_config_path"):
        bacalhau_job_spec(BacalhauConfig(), pipeline_config_path=" ")


def test_yaml_round_trip_keeps_order_and_string_types() -> None:
    config = BacalhauConfig(
        node_selector={"zone": "1", "enabled": "true"}, cpu="2", env={"PORT": "1883", "FLAG": "no"},
    )
    spec = bacalhau_job_spec(config, pipeline_config_path="/data/pipeline.yaml")
    text = render_job_yaml(spec)
    assert yaml.safe_load(text) == spec
    assert text.splitlines()[0] == "Name: chrono-sensors"
    top_level = [line.split(":")[0] for line in text.splitlines() if line[0] not in " -"]
    assert top_level == ["Name", "Type", "Count", "Constraints", "Tasks"]
    assert "Operator: '='" in text
    # Values YAML would read as numbers or booleans stay quoted strings for Bacalhau.
    assert "CPU: '2'" in text and "- 'true'" in text and "- '1'" in text
    assert "- PORT=1883" in text


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("env", {"BACALHAU_NODE_ID": "x"}, "reserved"),
        ("env", {"CHRONO_DATA": "/x"}, "data_path"),
        ("env", {"BAD-NAME": "x"}, "valid variable name"),
        ("data_path", "data", "absolute"),
        ("job_type", "cron", "job_type"),
        ("count", 0, "count"),
        ("unknown_key", 1, "unknown_key"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BacalhauConfig.model_validate({field: value})


def test_every_field_has_a_docstring() -> None:
    assert all(f.description for f in BacalhauConfig.model_fields.values())
