"""``chrono aws``: the Step Functions definition of the aws mode, its last phase, its executions.

``state-machine`` renders the definition JSON; ``finish`` is what the state machine's last ECS
task runs (merge, then the global phases over the schedule already in the inventory bucket);
``wait`` polls an execution until it ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from chrono.cli.errors import friendly_errors
from chrono.cli.run import read_passwords
from chrono.core.config import load_config
from chrono.core.logging import configure_logging

app = typer.Typer(help="The aws mode's Step Functions state machine and its last phase.",
                  no_args_is_help=True)

SourceOpt = Annotated[str, typer.Option(
    "--source-bucket", help="The production: s3://BUCKET/PREFIX.")]
InventoryOpt = Annotated[str, typer.Option(
    "--inventory-bucket", help="Where the schedule wrote groups.ndjson and files.ndjson.")]
ArtifactOpt = Annotated[str, typer.Option(
    "--artifact-bucket", help="Artifacts, blobs, events and per-group results.")]
ReportOpt = Annotated[str, typer.Option("--report-bucket", help="Run reports.")]
StepsOpt = Annotated[list[str] | None, typer.Option(
    "--steps", help="Only these steps (repeat, or comma-separated); default: all.")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint-url", help="Endpoint for S3 and Step Functions (MinIO, moto).")]


def _flat(steps: list[str] | None) -> tuple[str, ...]:
    return tuple(s for item in steps or [] for s in item.replace(",", " ").split())


@app.command("state-machine")
def state_machine_command(
    source_bucket: SourceOpt, inventory_bucket: InventoryOpt, artifact_bucket: ArtifactOpt,
    report_bucket: ReportOpt,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the definition here; default: stdout.")] = None,
    max_concurrency: Annotated[int, typer.Option(
        "--max-concurrency", min=1, help="Most groups running at once.")] = 300,
    steps: StepsOpt = None,
    skip_event_generation: Annotated[bool, typer.Option("--skip-event-generation")] = False,
    overwrite_existing: Annotated[bool, typer.Option("--overwrite-existing")] = False,
    db: Annotated[str | None, typer.Option(
        "--db", help="Database URL for the global phases (no password: it would be stored "
        "in the definition).")] = None,
    endpoint_url: EndpointOpt = None,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", envvar="CHRONO_ECS_CLUSTER", help="ECS cluster.")] = None,
    task_definition: Annotated[str | None, typer.Option(
        "--task-definition", envvar="CHRONO_TASK_DEFINITION",
        help="Task definition whose container runs the chrono image.")] = None,
    container: Annotated[str | None, typer.Option(
        "--container", envvar="CHRONO_CONTAINER", help="Container name in it.")] = None,
    subnet: Annotated[list[str] | None, typer.Option(
        "--subnet", help="Subnet id (repeat); default: CHRONO_SUBNETS (comma-separated).")
    ] = None,
    security_group: Annotated[list[str] | None, typer.Option(
        "--security-group", help="Security group id (repeat); default: "
        "CHRONO_SECURITY_GROUPS.")] = None,
    launch_type: Annotated[str | None, typer.Option(
        "--launch-type", envvar="CHRONO_LAUNCH_TYPE", help="FARGATE or EC2.")] = None,
    password_file: Annotated[str | None, typer.Option(
        "--password-file", envvar="CHRONO_PASSWORD_FILE",
        help="Password file's path INSIDE the container.")] = None,
    item_source: Annotated[str | None, typer.Option(
        "--item-source", envvar="CHRONO_SFN_ITEM_SOURCE",
        help="s3 (the Map reads groups.ndjson) or input (indexes in the execution input).")
    ] = None,
    ecs_integration: Annotated[str | None, typer.Option(
        "--ecs-integration", envvar="CHRONO_SFN_ECS_INTEGRATION",
        help="sync (real AWS) or sdk (emulators only: tasks are not waited for).")] = None,
) -> None:
    """Render the aws mode's state machine definition (Amazon States Language JSON)."""
    from chrono.scale import ScaleSettings
    from chrono.scale.state_machine import AwsOptions, check_definition, render_definition

    with friendly_errors():
        given: dict[str, Any] = {
            "cluster": cluster, "task_definition": task_definition, "container": container,
            "subnets": tuple(subnet) if subnet else None,
            "security_groups": tuple(security_group) if security_group else None,
            "launch_type": launch_type, "password_file": password_file,
            "item_source": item_source, "ecs_integration": ecs_integration,
        }
        options = dataclasses.replace(
            AwsOptions(), **{k: v for k, v in given.items() if v is not None})
        settings = ScaleSettings(
            source_url=source_bucket, inventory_url=inventory_bucket,
            artifact_url=artifact_bucket, report_url=report_bucket,
            max_concurrency=max_concurrency, steps=_flat(steps),
            skip_event_generation=skip_event_generation, overwrite=overwrite_existing,
            db_url=db, endpoint_url=endpoint_url, show_progress=False,
        )
        definition = render_definition(settings, options)
        problems = check_definition(definition)
    text = json.dumps(definition, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        Console(stderr=True).print(f"[bold green]wrote[/] {out}")
    if problems:
        Console(stderr=True).print(f"[bold red]{len(problems)} problems[/]: {problems[0]}")
        raise typer.Exit(1)


@app.command("finish")
def finish_command(
    source_bucket: SourceOpt, inventory_bucket: InventoryOpt, artifact_bucket: ArtifactOpt,
    report_bucket: ReportOpt,
    steps: StepsOpt = None,
    skip_event_generation: Annotated[bool, typer.Option("--skip-event-generation")] = False,
    overwrite_existing: Annotated[bool, typer.Option("--overwrite-existing")] = False,
    db: Annotated[str | None, typer.Option(
        "--db", envvar="CHRONO_DB_URL", help="Database URL (default: CHRONO_DB_URL, else "
        "sqlite in the artifact mirror, which is not uploaded).")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Passwords to try on encrypted archives and PDFs.")] = None,
    endpoint_url: EndpointOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir")] = None,
    config: Annotated[Path | None, typer.Option("--config")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    log_level: Annotated[str, typer.Option(help="Log level of the JSON log.")] = "WARNING",
) -> None:
    """Merge every group's results and run the global phases (the state machine's last task)."""
    from chrono.scale import Passwords, ScaleSettings, run_global_phases
    from chrono.scale.settings import FAN_OUT_STEP, default_work_dir

    with friendly_errors():
        configure_logging(log_level)
        chosen = tuple(s for s in _flat(steps) if s != FAN_OUT_STEP)
        settings = ScaleSettings(
            source_url=source_bucket, inventory_url=inventory_bucket,
            artifact_url=artifact_bucket, report_url=report_bucket, steps=chosen,
            skip_event_generation=skip_event_generation, overwrite=overwrite_existing,
            passwords=Passwords(read_passwords(password_file)), db_url=db,
            workers=workers or os.cpu_count() or 1, endpoint_url=endpoint_url,
            config=load_config(config).evidence,
            work_dir=str(work_dir) if work_dir else default_work_dir(), show_progress=not quiet,
        )
        ledger = run_global_phases(settings)
    console = Console(stderr=True)
    console.print(f"[bold green]done[/] run {ledger.run_id}")
    for s in ledger.steps:
        console.print(f"  {s.name:<11} {s.seconds:7.2f}s  "
                      + " ".join(f"{k}={v}" for k, v in s.counts.items()))


@app.command("wait")
def wait_command(
    execution_arn: Annotated[str, typer.Argument(help="The execution's ARN.")],
    endpoint_url: EndpointOpt = None,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", min=0.1)] = 5.0,
    timeout_s: Annotated[float | None, typer.Option(
        "--timeout", help="Give up after this many seconds (exit 3).")] = None,
) -> None:
    """Poll a Step Functions execution until it ends; prints its status, exits 1 unless it
    SUCCEEDED."""
    from chrono.scale.aws import sfn_client, wait_for_execution
    from chrono.scale.state_machine import AwsOptions

    with friendly_errors():
        status = wait_for_execution(sfn_client(AwsOptions(), endpoint_url), execution_arn,
                                    poll_seconds, timeout_s)
    typer.echo(status)
    if status == "RUNNING":
        raise typer.Exit(3)
    if status != "SUCCEEDED":
        raise typer.Exit(1)
