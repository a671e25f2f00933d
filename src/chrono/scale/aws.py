"""The ``aws`` mode: Step Functions runs every group as an ECS task, then the global phases.

``chrono schedule --mode aws`` schedules here (groups.ndjson lands in the inventory bucket) and,
with ``--execute``, renders the definition (:mod:`chrono.scale.state_machine`), creates or
updates the state machine by name, starts an execution named after the schedule and prints its
ARN on stdout. With ``CHRONO_AWS_WAIT=1`` (or :attr:`AwsOptions.wait`) it polls the execution
until it ends and reports each group as committed or not, from the groups' commit markers.

Credentials come from boto3's chain; the region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` or
:attr:`AwsOptions.region`; ``--endpoint-url`` points S3 and Step Functions at an emulator.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chrono.core.errors import ChronoError, ConfigError, TerminalError, TransientError
from chrono.core.logging import log_event
from chrono.scale.modes import ExecutionResult, Mode, register_mode
from chrono.scale.schedule import Schedule, group_entries
from chrono.scale.settings import ScaleSettings
from chrono.scale.state_machine import (
    AwsOptions,
    check_definition,
    execution_input,
    render_definition,
    split_s3_url,
)
from chrono.scale.worker import GroupOutcome, group_committed
from chrono.storage.buckets import open_bucket

RUNNING = "RUNNING"


@dataclass(frozen=True)
class StartedExecution:
    """An execution this mode started, and how it ended when it was waited for."""

    state_machine_arn: str
    execution_arn: str
    status: str = RUNNING

    def to_dict(self) -> dict[str, str]:
        return {"state_machine_arn": self.state_machine_arn,
                "execution_arn": self.execution_arn, "status": self.status}


def sfn_error(exc: Exception, operation: str) -> ChronoError:
    """A Step Functions failure as a Chrono error: the AWS code and operation, nothing else."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "Unknown")[:64]
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"aws_code={code} operation={operation}"
        if status >= 500 or status == 429 or "Throttl" in code:
            return TransientError("sfn_unavailable", detail)
        return TerminalError("sfn_" + code.removesuffix("Exception").lower(), detail)
    if isinstance(exc, BotoCoreError):
        return TransientError("sfn_unreachable", f"{type(exc).__name__} operation={operation}")
    raise exc


def sfn_client(options: AwsOptions, endpoint_url: str | None = None) -> Any:
    import boto3

    return boto3.client("stepfunctions", region_name=options.region, endpoint_url=endpoint_url)


def deploy_state_machine(client: Any, name: str, definition: dict[str, Any], role_arn: str
                         ) -> str:
    """Create the state machine ``name``, or update it when one of that name exists; its ARN."""
    body = json.dumps(definition)
    try:
        for page in client.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == name:
                    arn = str(machine["stateMachineArn"])
                    client.update_state_machine(stateMachineArn=arn, definition=body,
                                                roleArn=role_arn)
                    log_event("state_machine_updated", name=name)
                    return arn
        arn = str(client.create_state_machine(name=name, definition=body, roleArn=role_arn,
                                              type="STANDARD")["stateMachineArn"])
    except ChronoError:
        raise
    except Exception as exc:
        raise sfn_error(exc, "deploy_state_machine") from None
    log_event("state_machine_created", name=name)
    return arn


def start_execution(client: Any, state_machine_arn: str, name: str, payload: dict[str, Any]
                    ) -> str:
    try:
        return str(client.start_execution(stateMachineArn=state_machine_arn, name=name,
                                          input=json.dumps(payload))["executionArn"])
    except Exception as exc:
        raise sfn_error(exc, "start_execution") from None


def wait_for_execution(client: Any, execution_arn: str, poll_seconds: float = 5.0,
                       timeout_s: float | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll until the execution leaves RUNNING; its final status (``RUNNING`` on timeout)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            status = str(client.describe_execution(executionArn=execution_arn)["status"])
        except Exception as exc:
            raise sfn_error(exc, "describe_execution") from None
        if status != RUNNING or (deadline is not None and time.monotonic() >= deadline):
            return status
        sleep(poll_seconds)


def committed_outcomes(settings: ScaleSettings, plan: Schedule) -> list[GroupOutcome]:
    """Each group as its commit marker shows it after the execution: done, or failed."""
    artifacts = open_bucket(settings.artifact_url, endpoint_url=settings.endpoint_url)
    outcomes = []
    for line in plan.groups:
        index = line["group"]
        if group_committed(artifacts, index, group_entries(line)):
            outcomes.append(GroupOutcome(index, "done", files=line["file_count"]))
        else:
            outcomes.append(GroupOutcome(index, "failed", "not_committed",
                                         "no commit marker after the execution"))
    return outcomes


def launch(settings: ScaleSettings, plan: Schedule, options: AwsOptions,
           definition: dict[str, Any] | None = None) -> StartedExecution:
    """Render (unless given), deploy and start; wait too when ``options.wait``."""
    definition = definition or render_definition(settings, options)
    problems = check_definition(definition)
    if problems:  # a bug in rendering: never send a broken machine
        raise ConfigError("definition_invalid", f"{len(problems)} problems: {problems[0]}")
    if not options.role_arn:
        raise ConfigError("state_machine_role_missing",
                          "set CHRONO_STATE_MACHINE_ROLE_ARN to the role Step Functions assumes")
    if settings.passwords.values and not options.password_file:
        raise ConfigError(
            "passwords_not_shipped", "passwords never go into the state machine: put the file "
            "in the image or a volume and set CHRONO_PASSWORD_FILE to its path there")
    if options.launch_type == "FARGATE" and not options.subnets and (
        options.ecs_integration == "sync"
    ):
        raise ConfigError("subnets_missing", "Fargate tasks need subnets: set CHRONO_SUBNETS")
    client = sfn_client(options, settings.endpoint_url)
    machine = deploy_state_machine(client, options.state_machine_name, definition,
                                   options.role_arn)
    name = f"chrono-{plan.schedule_id or uuid.uuid4()}"
    arn = start_execution(client, machine, name,
                          execution_input(plan.schedule_id, plan.indices, options))
    log_event("execution_started", schedule_id=plan.schedule_id, groups_count=len(plan.groups))
    sys.stdout.write(arn + "\n")
    sys.stdout.flush()
    started = StartedExecution(machine, arn)
    if options.wait:
        status = wait_for_execution(client, arn, options.poll_seconds)
        log_event("execution_ended", schedule_id=plan.schedule_id, status=status)
        started = StartedExecution(machine, arn, status)
    reports = open_bucket(settings.report_url, endpoint_url=settings.endpoint_url)
    record = {**started.to_dict(), "schedule_id": plan.schedule_id,
              "groups": len(plan.groups), "written_at": datetime.now(UTC).isoformat()}
    reports.put_bytes(f"executions/{plan.schedule_id or 'empty'}.json",
                      json.dumps(record, sort_keys=True).encode("utf-8"))
    return started


@register_mode
class AwsMode(Mode):
    """Step Functions with a Distributed Map of ECS tasks; the global phases run there too."""

    name = "aws"

    def __init__(self, settings: ScaleSettings, options: AwsOptions | None = None) -> None:
        super().__init__(settings)
        for url in (settings.source_url, settings.inventory_url, settings.artifact_url,
                    settings.report_url):
            split_s3_url(url)  # before any hashing: ECS tasks cannot see local folders
        self.options = options or AwsOptions()
        self.started: StartedExecution | None = None

    def run_groups(self, plan: Schedule, done: Callable[[GroupOutcome], None]
                   ) -> list[GroupOutcome]:
        """Only the fan-out on Step Functions, waited for; outcomes from the commit markers."""
        fan_out = dataclasses.replace(self.settings, steps=("extraction",))
        options = dataclasses.replace(self.options, wait=True)
        self.started = launch(fan_out, plan, options)
        outcomes = committed_outcomes(self.settings, plan)
        for outcome in outcomes:
            done(outcome)
        return outcomes

    def execute(self, plan: Schedule) -> ExecutionResult:
        """Start the whole run on Step Functions; group outcomes only when waited for."""
        result = ExecutionResult(plan, self.name)
        self.started = launch(self.settings, plan, self.options)
        if self.started.status != RUNNING:
            result.groups = committed_outcomes(self.settings, plan)
            if self.started.status != "SUCCEEDED":
                raise TerminalError("execution_" + self.started.status.lower(),
                                    f"the Step Functions execution ended {self.started.status}")
        return result


__all__ = [
    "AwsMode", "StartedExecution", "committed_outcomes", "deploy_state_machine", "launch",
    "sfn_client", "start_execution", "wait_for_execution",
]
