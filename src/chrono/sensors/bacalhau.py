"""Bacalhau job specs that run the sensor pipeline on edge nodes (``bacalhau job run job.yaml``).

The job is a Bacalhau v1.x job: one docker task running ``chrono sensors run --config PATH
[--once]`` with the node's data folder mounted read-write at the same path inside the container
(a ``localDirectory`` input source). The compute node must allow that folder, e.g. ``bacalhau
serve --config Compute.AllowListedLocalPaths="/data:rw"``.

At run time Bacalhau itself sets ``BACALHAU_NODE_ID``, ``BACALHAU_EXECUTION_ID``,
``BACALHAU_JOB_ID`` (and other ``BACALHAU_*`` variables) in the container; the sensor lineage
reads them to record which node and execution produced each record, so the spec never sets them
and the config refuses ``BACALHAU_*`` names in ``env``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from chrono.core.config import StrictModel
from chrono.core.errors import ConfigError

ONCE_TIMEOUT_S = 3600
"""Execution timeout of a ``--once`` run; continuous runs get none (0 means no timeout)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BacalhauConfig(StrictModel):
    """How the sensor pipeline is submitted to a Bacalhau network."""

    image: str = "ghcr.io/chrono/chrono:latest"
    """Docker image holding Chrono (with ``chrono`` on its PATH)."""
    job_name: str = "chrono-sensors"
    """Bacalhau job name, as ``bacalhau job list`` shows it."""
    job_type: Literal["batch", "ops", "daemon", "service"] = "ops"
    """``ops``: once on every matching node; ``batch``: once on ``count`` nodes; ``daemon``:
    continuously on every matching node (also nodes that join later); ``service``: continuously
    on ``count`` nodes."""
    count: int = Field(default=1, ge=1)
    """Nodes to run on for ``batch`` and ``service`` jobs (``ops``/``daemon`` use all matches)."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels that must match exactly (label -> value), e.g. ``{"site": "plant-7"}``."""
    cpu: str = "1"
    """CPU the task asks for, in Bacalhau units (``"1"``, ``"500m"``)."""
    memory: str = "1Gb"
    """Memory the task asks for (``"512Mb"``, ``"1Gb"``)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the container; ``BACALHAU_*`` and ``CHRONO_DATA`` are
    reserved (set by Bacalhau, and from ``data_path``)."""
    data_path: str = "/data"
    """Absolute host folder mounted read-write at the same path in the container; becomes
    ``CHRONO_DATA``, so buckets, cursors and ledgers persist across runs on the node."""

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env name '{name}' is not a valid variable name")
            if name.startswith("BACALHAU_"):
                raise ValueError(f"env name '{name}' is reserved: Bacalhau sets BACALHAU_* itself")
            if name == "CHRONO_DATA":
                raise ValueError("CHRONO_DATA comes from data_path; set data_path instead")
        return env

    @field_validator("data_path")
    @classmethod
    def _check_data_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("data_path must be an absolute path such as /data")
        return path.rstrip("/") or "/"


def bacalhau_job_spec(
    config: BacalhauConfig, *, pipeline_config_path: str, once: bool = True
) -> dict[str, Any]:
    """The Bacalhau job (as a plain dict) that runs ``chrono sensors run`` on matching nodes.

    ``pipeline_config_path`` is the pipeline.yaml path *inside the container* (typically under
    ``data_path``). ``once`` adds ``--once`` (one incremental pass, then exit) and a timeout of
    :data:`ONCE_TIMEOUT_S`; ``daemon`` and ``service`` jobs run continuously, so they need
    ``once=False``. Bacalhau sets ``BACALHAU_NODE_ID`` and ``BACALHAU_EXECUTION_ID`` in the
    container at run time; the lineage stamps them on every record.
    """
    if not pipeline_config_path.strip():
        raise ConfigError("config_invalid", "bacalhau: pipeline_config_path is empty; give a path")
    if once and config.job_type in ("daemon", "service"):
        raise ConfigError(
            "config_invalid",
            f"bacalhau.job_type '{config.job_type}' runs continuously and cannot use --once; "
            "generate the spec without --once or use job_type batch/ops",
        )
    parameters = ["sensors", "run", "--config", pipeline_config_path]
    if once:
        parameters.append("--once")
    env = {**config.env, "CHRONO_DATA": config.data_path}
    task: dict[str, Any] = {
        "Name": "sensors",
        "Engine": {
            "Type": "docker",
            "Params": {
                "Image": config.image,
                "Entrypoint": ["chrono"],
                "Parameters": parameters,
                "EnvironmentVariables": [f"{k}={v}" for k, v in sorted(env.items())],
            },
        },
        "InputSources": [
            {
                "Source": {
                    "Type": "localDirectory",
                    "Params": {"SourcePath": config.data_path, "ReadWrite": True},
                },
                "Target": config.data_path,
            }
        ],
        # Readings come from MQTT/SQLite on the node and go out to S3/SQS/HTTP.
        "Network": {"Type": "Full"},
        "Resources": {"CPU": config.cpu, "Memory": config.memory},
        "Timeouts": {"ExecutionTimeout": ONCE_TIMEOUT_S if once else 0},
    }
    return {
        "Name": config.job_name,
        "Type": config.job_type,
        "Count": config.count,
        "Constraints": [
            {"Key": key, "Operator": "=", "Values": [value]}
            for key, value in sorted(config.node_selector.items())
        ],
        "Tasks": [task],
    }


def render_job_yaml(spec: dict[str, Any]) -> str:
    """The job as YAML for ``bacalhau job run``: keys in the spec's order, strings kept quoted."""
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=False, allow_unicode=True)
