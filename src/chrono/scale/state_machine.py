"""The Step Functions definition of a scale-out run: a Distributed Map over the groups, then the
global phases, each an ECS task running the ``chrono`` image.

:func:`render_definition` builds the Amazon States Language document from the run's
:class:`~chrono.scale.settings.ScaleSettings` and the :class:`AwsOptions` (cluster, task
definition, subnets...; ``CHRONO_*`` environment variables give the defaults):

* ``Groups``: a ``Map`` in ``DISTRIBUTED`` mode. Its items are the lines of the inventory
  bucket's ``groups.ndjson`` (``ItemReader`` ``s3:getObject``, ``InputType: JSONL``), or with
  ``item_source="input"`` the group indexes listed in the execution input. Each item runs
  ``chrono worker --groups <groups.ndjson> --index <n>`` as ``ecs:runTask.sync`` (the state
  waits for the container to stop and fails when it exits non-zero), at most ``MaxConcurrency``
  at once, retried on ECS API errors and on a failed task (a committed group is not redone).
* ``GlobalPhases``: ``chrono aws finish ... --steps events,upload,...`` as one more ECS task,
  in the seed's order; it reads the schedule beside ``groups.ndjson``, merges and finishes.

``ecs_integration="sdk"`` renders the ECS tasks as ``aws-sdk:ecs:runTask`` with SDK-cased
parameters instead: that starts the tasks without waiting for them, so it is only for
emulators (moto 5 executes it; its ``ecs:runTask.sync`` passes parameters unconverted to boto3
and fails) and never for real AWS.

:func:`check_definition` is a structural check of any definition: required fields per state
type, ``Next`` targets that exist, every state reachable, each branch ending.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from chrono.core.errors import ConfigError
from chrono.scale.settings import ScaleSettings

ItemSource = Literal["s3", "input"]
EcsIntegration = Literal["sync", "sdk"]

ECS_API_ERRORS = ["ECS.AmazonECSException", "ECS.ServerException", "ECS.ThrottlingException",
                  "States.Timeout"]
"""ECS failures worth retrying: capacity, throttling, service hiccups, a task that timed out."""
MAP_STATE = "Groups"
WORKER_STATE = "Worker"
GLOBAL_STATE = "GlobalPhases"


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


@dataclass(frozen=True)
class AwsOptions:
    """Where the ECS tasks run and how the state machine is built and started."""

    cluster: str = field(default_factory=lambda: os.environ.get("CHRONO_ECS_CLUSTER", "chrono"))
    """ECS cluster (name or ARN); ``CHRONO_ECS_CLUSTER``."""
    task_definition: str = field(
        default_factory=lambda: os.environ.get("CHRONO_TASK_DEFINITION", "chrono-worker"))
    """Task definition (family, family:revision or ARN) whose container has the chrono image;
    ``CHRONO_TASK_DEFINITION``."""
    container: str = field(default_factory=lambda: os.environ.get("CHRONO_CONTAINER", "chrono"))
    """Container name inside the task definition; ``CHRONO_CONTAINER``."""
    subnets: tuple[str, ...] = field(default_factory=lambda: _env_list("CHRONO_SUBNETS"))
    """Subnet ids for awsvpc networking (Fargate needs them); ``CHRONO_SUBNETS`` (a,b,c)."""
    security_groups: tuple[str, ...] = field(
        default_factory=lambda: _env_list("CHRONO_SECURITY_GROUPS"))
    """Security group ids of the tasks; ``CHRONO_SECURITY_GROUPS``."""
    assign_public_ip: bool = field(
        default_factory=lambda: os.environ.get("CHRONO_ASSIGN_PUBLIC_IP", "") in ("1", "true"))
    """Give tasks a public IP (subnets without a NAT gateway or S3 endpoint need one)."""
    launch_type: str = field(
        default_factory=lambda: os.environ.get("CHRONO_LAUNCH_TYPE", "FARGATE"))
    """FARGATE or EC2; ``CHRONO_LAUNCH_TYPE``."""
    command_prefix: tuple[str, ...] = ("chrono",)
    """How the container starts chrono (the Command override replaces the image's CMD)."""
    password_file: str | None = field(
        default_factory=lambda: os.environ.get("CHRONO_PASSWORD_FILE") or None)
    """Password file's path inside the container (never the passwords themselves);
    ``CHRONO_PASSWORD_FILE``."""
    config_file: str | None = field(
        default_factory=lambda: os.environ.get("CHRONO_CONFIG_FILE") or None)
    """chrono.yaml's path inside the container; ``CHRONO_CONFIG_FILE``."""
    item_source: ItemSource = field(default_factory=lambda: cast(ItemSource, _literal(
        "CHRONO_SFN_ITEM_SOURCE", "s3", ("s3", "input"))))
    """``s3``: the Map reads groups.ndjson itself (JSONL); ``input``: indexes in the input
    (256 KiB limit: some tens of thousands of groups)."""
    ecs_integration: EcsIntegration = field(default_factory=lambda: cast(EcsIntegration, _literal(
        "CHRONO_SFN_ECS_INTEGRATION", "sync", ("sync", "sdk"))))
    """``sync`` (real AWS): wait for each task; ``sdk``: emulators only (see module doc)."""
    task_timeout_s: int = 24 * 3600
    """Longest one ECS task may run before Step Functions gives up on it (then retries)."""
    state_machine_name: str = field(
        default_factory=lambda: os.environ.get("CHRONO_STATE_MACHINE_NAME", "chrono-schedule"))
    """Created, or updated when it exists; ``CHRONO_STATE_MACHINE_NAME``."""
    role_arn: str | None = field(
        default_factory=lambda: os.environ.get("CHRONO_STATE_MACHINE_ROLE_ARN") or None)
    """Role Step Functions assumes (ecs:RunTask, iam:PassRole, s3, states:StartExecution...);
    ``CHRONO_STATE_MACHINE_ROLE_ARN``."""
    region: str | None = field(default_factory=lambda: (
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None))
    """AWS region; unset: boto3's own configuration."""
    wait: bool = field(
        default_factory=lambda: os.environ.get("CHRONO_AWS_WAIT", "") in ("1", "true"))
    """Poll the execution until it ends (``CHRONO_AWS_WAIT=1``)."""
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.item_source not in ("s3", "input"):
            raise ConfigError("item_source", "item source must be s3 or input")
        if self.ecs_integration not in ("sync", "sdk"):
            raise ConfigError("ecs_integration", "ECS integration must be sync or sdk")


def _literal(env: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(env, default) or default
    if value not in allowed:
        raise ConfigError(env.lower(), f"{env} must be one of {', '.join(allowed)}")
    return value


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b.ndjson`` -> (``bucket``, ``a/b.ndjson``); anything else fails."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError("aws_bucket_not_s3",
                          "aws mode needs s3:// buckets (ECS tasks cannot see local folders)")
    return parts.netloc, parts.path.lstrip("/")


def _db_flag(db_url: str | None) -> list[str]:
    if not db_url:
        return []
    if urlsplit(db_url).password:
        raise ConfigError(
            "db_url_secret", "a --db URL with a password would be stored in the state machine; "
            "set CHRONO_DB_URL in the task definition (from a secret) instead")
    return ["--db", db_url]


def common_flags(settings: ScaleSettings, options: AwsOptions) -> list[str]:
    """Flags every ECS command carries: endpoint, overwrite, password and config files."""
    flags: list[str] = []
    if settings.endpoint_url:
        flags += ["--endpoint-url", settings.endpoint_url]
    if settings.overwrite:
        flags.append("--overwrite-existing")
    if options.password_file:
        flags += ["--password-file", options.password_file]
    if options.config_file:
        flags += ["--config", options.config_file]
    return flags


def worker_command(settings: ScaleSettings, options: AwsOptions) -> list[str]:
    """``chrono worker`` for one group, without ``--index`` (the Map item adds it)."""
    return [*options.command_prefix, "worker", "--groups", settings.groups_url,
            *common_flags(settings, options)]


def finish_command(settings: ScaleSettings, options: AwsOptions) -> list[str]:
    """``chrono aws finish``: merge and the selected global phases, in seed order."""
    return [
        *options.command_prefix, "aws", "finish",
        "--source-bucket", settings.source_url, "--inventory-bucket", settings.inventory_url,
        "--artifact-bucket", settings.artifact_url, "--report-bucket", settings.report_url,
        "--steps", ",".join(settings.global_steps), *_db_flag(settings.db_url),
        *common_flags(settings, options), "--quiet",
    ]


def _intrinsic_literal(value: str) -> str:
    """A string literal inside an intrinsic function: ' { } and \\ are escaped."""
    for ch in ("\\", "'", "{", "}"):
        value = value.replace(ch, "\\" + ch)
    return f"'{value}'"


def _ecs_task(options: AwsOptions, command: dict[str, Any], retry_failed_task: int
              ) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "Cluster": options.cluster, "TaskDefinition": options.task_definition,
        "LaunchType": options.launch_type,
        "Overrides": {"ContainerOverrides": [{"Name": options.container, **command}]},
    }
    if options.subnets:
        vpc: dict[str, Any] = {
            "Subnets": list(options.subnets),
            "AssignPublicIp": "ENABLED" if options.assign_public_ip else "DISABLED",
        }
        if options.security_groups:
            vpc["SecurityGroups"] = list(options.security_groups)
        parameters["NetworkConfiguration"] = {"AwsvpcConfiguration": vpc}
    retry: list[dict[str, Any]] = [{
        "ErrorEquals": ECS_API_ERRORS, "IntervalSeconds": 10, "MaxAttempts": 5,
        "BackoffRate": 2.0, "JitterStrategy": "FULL",
    }]
    if retry_failed_task:
        # A container that exited non-zero (out of memory, a spot reclaim): a re-run resumes.
        retry.append({"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30,
                      "MaxAttempts": retry_failed_task, "BackoffRate": 2.0})
    if options.ecs_integration == "sdk":
        return {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ecs:runTask",
                "Parameters": _sdk_cased(parameters), "Retry": retry,
                "TimeoutSeconds": options.task_timeout_s}
    return {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync",
            "Parameters": parameters, "Retry": retry, "TimeoutSeconds": options.task_timeout_s}


def _sdk_cased(value: Any) -> Any:
    """Step Functions' ECS parameter names (``Cluster``) as the SDK's (``cluster``)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _sdk_cased(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sdk_cased(v) for v in value]
    return value


def _map_state(settings: ScaleSettings, options: AwsOptions) -> dict[str, Any]:
    array = ", ".join(_intrinsic_literal(a) for a in worker_command(settings, options))
    worker = _ecs_task(options, {"Command.$": f"States.Array({array}, '--index', $.index)"},
                       retry_failed_task=2)
    worker.update(ResultPath=None, End=True)
    state: dict[str, Any] = {
        "Type": "Map",
        "Comment": "chrono worker for every group of groups.ndjson",
        "MaxConcurrency": settings.max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": WORKER_STATE, "States": {WORKER_STATE: worker},
        },
        "Label": "groups",
    }
    if options.item_source == "s3":
        bucket, key = split_s3_url(settings.groups_url)
        state["ItemReader"] = {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": bucket, "Key": key},
        }
        item = "$$.Map.Item.Value.group"
    else:
        state["ItemsPath"] = "$.groups"
        item = "$$.Map.Item.Value"
    # Only the index travels to the child: a group's line can be far larger than its input limit.
    state["ItemSelector"] = {"index.$": f"States.Format('{{}}', {item})"}
    report_bucket, report_prefix = split_s3_url(settings.report_url)
    state["ResultWriter"] = {  # child results to S3: a big map's results exceed 256 KiB
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": report_bucket,
                       "Prefix": "/".join(p for p in (report_prefix.strip("/"), "step-functions")
                                          if p)},
    }
    state["ResultPath"] = None
    return state


def render_definition(settings: ScaleSettings, options: AwsOptions | None = None
                      ) -> dict[str, Any]:
    """The state machine: ``Groups`` (when extraction is selected), then ``GlobalPhases``
    (when a global step is); every bucket must be ``s3://``."""
    options = options or AwsOptions()
    for url in (settings.source_url, settings.inventory_url, settings.artifact_url,
                settings.report_url):
        split_s3_url(url)
    states: dict[str, dict[str, Any]] = {}
    if settings.runs_fan_out:
        states[MAP_STATE] = _map_state(settings, options)
    if settings.global_steps:
        phase = _ecs_task(options, {"Command": finish_command(settings, options)},
                          retry_failed_task=1)
        phase.update(Comment="merge, then " + ", ".join(settings.global_steps), End=True)
        states[GLOBAL_STATE] = phase
    if not states:
        raise ConfigError("steps_empty", "--steps selects nothing to run")
    names = list(states)
    for name, following in itertools.pairwise(names):
        states[name].pop("End", None)
        states[name]["Next"] = following
    states[names[-1]]["End"] = True
    return {
        "Comment": "Chrono scale-out: chrono worker per group (Distributed Map), then the "
                   "global phases",
        "StartAt": names[0],
        "States": states,
    }


def execution_input(schedule_id: str, groups: list[int], options: AwsOptions
                    ) -> dict[str, Any]:
    """The execution's input: the schedule's id, and the indexes with ``item_source=input``."""
    payload: dict[str, Any] = {"schedule_id": schedule_id, "group_count": len(groups)}
    if options.item_source == "input":
        payload["groups"] = groups
    return payload


_REQUIRED = {
    "Task": ("Resource",), "Map": ("ItemProcessor",), "Choice": ("Choices",),
    "Wait": (), "Pass": (), "Succeed": (), "Fail": (), "Parallel": ("Branches",),
}
_TERMINAL = {"Succeed", "Fail"}


def check_definition(definition: dict[str, Any], where: str = "") -> list[str]:
    """Structural problems of an ASL definition (empty when none): ``StartAt`` and ``Next``
    name existing states, each non-terminal state has exactly one of ``Next``/``End``, required
    fields are present, every state is reachable; Map and Parallel bodies are checked too."""
    problems: list[str] = []
    states = definition.get("States")
    start = definition.get("StartAt")
    if not isinstance(states, dict) or not states:
        return [f"{where}States missing or empty"]
    if start not in states:
        problems.append(f"{where}StartAt names no state")
    edges: dict[str, set[str]] = {}
    for name, state in states.items():
        here = f"{where}{name}: "
        kind = state.get("Type")
        if kind not in _REQUIRED:
            problems.append(f"{here}unknown Type")
            continue
        problems += [f"{here}{f} missing" for f in _REQUIRED[kind] if f not in state]
        targets = set()
        if kind == "Choice":
            targets |= {c.get("Next") for c in state.get("Choices", [])}
            if "Default" in state:
                targets.add(state["Default"])
        elif kind not in _TERMINAL:
            has_next, has_end = "Next" in state, state.get("End") is True
            if has_next == has_end:
                problems.append(f"{here}needs exactly one of Next and End")
            if has_next:
                targets.add(state["Next"])
        targets |= {c.get("Next") for c in state.get("Catch", [])}
        problems += [f"{here}Next names no state" for t in targets if t not in states]
        edges[name] = {t for t in targets if t in states}
        if kind == "Map":
            body = state.get("ItemProcessor") or {}
            problems += check_definition(body, f"{here}")
            mode = (body.get("ProcessorConfig") or {}).get("Mode", "INLINE")
            if mode == "DISTRIBUTED" and "ItemReader" not in state and "ItemsPath" not in state:
                problems.append(f"{here}a distributed Map needs ItemReader or ItemsPath")
            if "ItemReader" in state and "Resource" not in state["ItemReader"]:
                problems.append(f"{here}ItemReader Resource missing")
        if kind == "Parallel":
            for i, branch in enumerate(state.get("Branches", [])):
                problems += check_definition(branch, f"{here}branch {i}: ")
    seen: set[str] = set()
    todo: list[str] = [str(start)] if start in states else []
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    problems += [f"{where}{n}: unreachable" for n in states if n not in seen]
    return problems


__all__ = [
    "AwsOptions", "check_definition", "execution_input", "finish_command", "render_definition",
    "split_s3_url", "worker_command",
]
