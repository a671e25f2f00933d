"""The aws mode: the rendered Step Functions definition (structure, moto's ASL parser) and a
``--mode aws --execute`` run against moto's server with state machine execution switched on.

moto runs the execution (Distributed Map over the groups, then the global phases) but not
containers: the test reads the ECS tasks moto recorded and runs exactly their commands here,
against the same S3 endpoint, then compares the timeline with a local ``chrono run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from chrono.core.errors import ConfigError
from chrono.evidence.sample.pdfs import text_pdf
from chrono.scale.settings import GLOBAL_STEPS, ScaleSettings
from chrono.scale.state_machine import AwsOptions, check_definition, render_definition
from tests.scale.conftest import CSV, EML, exported

BUCKETS = {"source_url": "s3://src/case-1", "inventory_url": "s3://inv/sched",
           "artifact_url": "s3://art/a", "report_url": "s3://rep/r"}


def _settings(**extra: Any) -> ScaleSettings:
    return ScaleSettings(**BUCKETS, show_progress=False, **extra)  # type: ignore[arg-type]


def _options(**extra: Any) -> AwsOptions:
    given: dict[str, Any] = {
        "cluster": "c1", "task_definition": "chrono-worker:3", "container": "chrono",
        "subnets": ("subnet-a", "subnet-b"), "security_groups": ("sg-1",),
        "item_source": "s3", "ecs_integration": "sync", **extra}
    return AwsOptions(**given)


def _parse_with_moto(definition: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(json.dumps(definition))


def test_definition_is_a_distributed_map_then_the_global_phases() -> None:
    definition = render_definition(_settings(max_concurrency=42), _options())
    assert check_definition(definition) == []
    assert definition["StartAt"] == "Groups"
    groups = definition["States"]["Groups"]
    assert groups["Next"] == "GlobalPhases" and "End" not in groups
    assert groups["MaxConcurrency"] == 42
    assert groups["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED",
                                                          "ExecutionType": "STANDARD"}
    assert groups["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSONL"},
        "Parameters": {"Bucket": "inv", "Key": "sched/groups.ndjson"}}
    assert groups["ItemSelector"] == {
        "index.$": "States.Format('{}', $$.Map.Item.Value.group)"}
    worker = groups["ItemProcessor"]["States"]["Worker"]
    assert worker["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    params = worker["Parameters"]
    assert params["Cluster"] == "c1" and params["TaskDefinition"] == "chrono-worker:3"
    assert params["NetworkConfiguration"]["AwsvpcConfiguration"] == {
        "Subnets": ["subnet-a", "subnet-b"], "SecurityGroups": ["sg-1"],
        "AssignPublicIp": "DISABLED"}
    override = params["Overrides"]["ContainerOverrides"][0]
    assert override["Name"] == "chrono"
    assert override["Command.$"] == (
        "States.Array('chrono', 'worker', '--groups', 's3://inv/sched/groups.ndjson', "
        "'--index', $.index)")
    retried = [r["ErrorEquals"] for r in worker["Retry"]]
    assert any("ECS.AmazonECSException" in e for e in retried) and ["States.TaskFailed"] in retried
    final = definition["States"]["GlobalPhases"]
    assert final["End"] is True
    command = final["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command"]
    assert command[:3] == ["chrono", "aws", "finish"]
    assert command[command.index("--steps") + 1] == ",".join(GLOBAL_STEPS)
    assert command[command.index("--inventory-bucket") + 1] == "s3://inv/sched"

    # moto's parser (the one create_state_machine runs) knows every construct except the
    # JSONL input type, which it lacks: it parses the same document with JSON there.
    with pytest.raises(Exception, match="JSONL"):
        _parse_with_moto(definition)
    groups["ItemReader"]["ReaderConfig"]["InputType"] = "JSON"
    _parse_with_moto(definition)


def test_variants_follow_steps_and_options() -> None:
    only_global = render_definition(_settings(steps=("upload", "dedupe"),
                                              db_url="sqlite:////data/t.db"), _options())
    assert list(only_global["States"]) == ["GlobalPhases"]
    command = only_global["States"]["GlobalPhases"]["Parameters"]["Overrides"][
        "ContainerOverrides"][0]["Command"]
    assert command[command.index("--steps") + 1] == "upload,dedupe"
    assert command[command.index("--db") + 1] == "sqlite:////data/t.db"

    skipped = render_definition(_settings(skip_event_generation=True), _options())
    command = skipped["States"]["GlobalPhases"]["Parameters"]["Overrides"][
        "ContainerOverrides"][0]["Command"]
    assert command[command.index("--steps") + 1] == "upload,dedupe,persons,devices,mapping"

    fan_out = render_definition(_settings(steps=("extraction",)), _options())
    assert list(fan_out["States"]) == ["Groups"] and fan_out["States"]["Groups"]["End"] is True

    emulated = render_definition(_settings(endpoint_url="http://localhost:9"),
                                 _options(item_source="input", ecs_integration="sdk"))
    assert check_definition(emulated) == []
    groups = emulated["States"]["Groups"]
    assert groups["ItemsPath"] == "$.groups" and "ItemReader" not in groups
    worker = groups["ItemProcessor"]["States"]["Worker"]
    assert worker["Resource"] == "arn:aws:states:::aws-sdk:ecs:runTask"
    assert worker["Parameters"]["cluster"] == "c1"
    assert "'--endpoint-url', 'http://localhost:9'" in (
        worker["Parameters"]["overrides"]["containerOverrides"][0]["command.$"])
    _parse_with_moto(emulated)

    with pytest.raises(ConfigError, match="s3://"):
        render_definition(ScaleSettings(source_url="s3://src", inventory_url="s3://inv",
                                        artifact_url="/tmp/art", report_url="s3://rep"),
                          _options())
    with pytest.raises(ConfigError) as err:
        render_definition(_settings(db_url="postgresql://u:Hunter2pw@db/x"), _options())
    assert err.value.code == "db_url_secret" and "Hunter2pw" not in str(err.value)


def test_structural_check_finds_broken_definitions() -> None:
    good = render_definition(_settings(), _options())
    broken = json.loads(json.dumps(good))
    broken["States"]["Groups"].pop("Next")
    problems = check_definition(broken)
    assert any("exactly one of Next and End" in p for p in problems)
    assert any("GlobalPhases: unreachable" in p for p in problems)
    broken = json.loads(json.dumps(good))
    broken["States"]["Groups"]["Next"] = "Nowhere"
    broken["States"]["Groups"]["ItemProcessor"]["States"]["Worker"].pop("Resource")
    problems = check_definition(broken)
    assert any("Next names no state" in p for p in problems)
    assert any("Worker: Resource missing" in p for p in problems)
    broken["StartAt"] = "Missing"
    assert "StartAt names no state" in check_definition(broken)


def _chrono(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_state_machine_command_renders_from_env(tmp_path: Path) -> None:
    out = tmp_path / "sm.json"
    proc = _chrono("aws", "state-machine", "--source-bucket", "s3://src/p", "--inventory-bucket",
                   "s3://inv", "--artifact-bucket", "s3://art", "--report-bucket", "s3://rep",
                   "--max-concurrency", "9", "--out", str(out), cwd=tmp_path,
                   env={"CHRONO_ECS_CLUSTER": "prod-cluster", "CHRONO_SUBNETS": "subnet-1,subnet-2",
                        "CHRONO_TASK_DEFINITION": "chrono:7"})
    assert proc.returncode == 0, proc.stderr
    definition = json.loads(out.read_text())
    assert check_definition(definition) == []
    worker = definition["States"]["Groups"]["ItemProcessor"]["States"]["Worker"]["Parameters"]
    assert worker["Cluster"] == "prod-cluster" and worker["TaskDefinition"] == "chrono:7"
    assert worker["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"] == [
        "subnet-1", "subnet-2"]
    assert definition["States"]["Groups"]["MaxConcurrency"] == 9

    local = _chrono("aws", "state-machine", "--source-bucket", str(tmp_path), "--inventory-bucket",
                    "s3://inv", "--artifact-bucket", "s3://art", "--report-bucket", "s3://rep",
                    cwd=tmp_path)
    assert local.returncode == 2 and "aws_bucket_not_s3" in local.stderr


def _production(root: Path) -> Path:
    (root / "mail").mkdir(parents=True)
    for n in range(3):
        (root / "mail" / f"m{n}.eml").write_text(EML.format(n=n))
    (root / "calls.csv").write_text(CSV)
    (root / "docs").mkdir()
    (root / "docs" / "memo.pdf").write_bytes(text_pdf(
        [["Memo dated March 5, 2025.", "The shipment was delivered and signed."]],
        "Memo", datetime(2025, 3, 5, tzinfo=UTC)))
    return root


def _enable_execution(endpoint: str) -> None:
    """moto's server executes state machines once its config says so (moto-api/config)."""
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    request = urllib.request.Request(f"{endpoint}/moto-api/config", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def _recorded_commands(ecs: Any, cluster: str) -> list[list[str]]:
    arns = sorted({a for status in ("RUNNING", "STOPPED")
                   for a in ecs.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]})
    assert arns, "the execution started no ECS task"
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    return [t["overrides"]["containerOverrides"][0]["command"] for t in tasks]


def test_aws_mode_executes_against_moto(moto_endpoint: str, tmp_path: Path) -> None:
    _enable_execution(moto_endpoint)
    tag = uuid.uuid4().hex[:8]
    names = {k: f"aws-{k}-{tag}" for k in ("src", "inv", "art", "rep")}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    for name in names.values():
        s3.create_bucket(Bucket=name)
    prod = _production(tmp_path / "prod")
    for path in sorted(prod.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), names["src"], f"case/{path.relative_to(prod).as_posix()}")

    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    ecs = boto3.client("ecs", endpoint_url=moto_endpoint)
    cluster = f"chrono-{tag}"
    ecs.create_cluster(clusterName=cluster)
    # No awsvpc network mode: moto 5.2's ENI for awsvpc tasks lacks an attribute it reads.
    ecs.register_task_definition(family=f"chrono-worker-{tag}", containerDefinitions=[
        {"name": "chrono", "image": "chrono:test", "essential": True, "cpu": 1024,
         "memory": 2048}])
    env = {
        "CHRONO_ECS_CLUSTER": cluster, "CHRONO_TASK_DEFINITION": f"chrono-worker-{tag}",
        "CHRONO_SUBNETS": subnet, "CHRONO_STATE_MACHINE_NAME": f"chrono-{tag}",
        "CHRONO_STATE_MACHINE_ROLE_ARN": "arn:aws:iam::123456789012:role/chrono-sfn",
        # moto lacks the JSONL item reader and runs ecs:runTask.sync with unconverted
        # parameter names: the emulator variant of the same machine (see state_machine.py).
        "CHRONO_SFN_ITEM_SOURCE": "input", "CHRONO_SFN_ECS_INTEGRATION": "sdk",
    }
    db = f"sqlite:///{tmp_path / 'timeline.db'}"
    work = ["--work-dir", str(tmp_path / "work")]
    proc = _chrono(
        "schedule", "--mode", "aws", "--source-bucket", f"s3://{names['src']}/case",
        "--inventory-bucket", f"s3://{names['inv']}/run", "--artifact-bucket",
        f"s3://{names['art']}", "--report-bucket", f"s3://{names['rep']}/reports",
        "--endpoint-url", moto_endpoint, "--minimum-batch-size", "2", "--max-concurrency", "2",
        "--db", db, "--execute", "--quiet", *work, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    execution_arn = proc.stdout.strip().splitlines()[-1]
    assert execution_arn.startswith("arn:aws:states:")

    groups = [json.loads(line) for line in s3.get_object(
        Bucket=names["inv"], Key="run/groups.ndjson")["Body"].read().decode().splitlines()]
    assert len(groups) >= 2

    waited = _chrono("aws", "wait", execution_arn, "--endpoint-url", moto_endpoint,
                     "--poll-seconds", "0.2", "--timeout", "60", cwd=tmp_path)
    assert waited.stdout.strip() == "SUCCEEDED", waited.stdout + waited.stderr
    sfn = boto3.client("stepfunctions", endpoint_url=moto_endpoint)
    history = [e["type"] for e in sfn.get_execution_history(executionArn=execution_arn)["events"]]
    assert history.index("MapRunSucceeded") < history.index("ExecutionSucceeded")
    machine = sfn.describe_execution(executionArn=execution_arn)["stateMachineArn"]
    deployed = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    assert deployed["States"]["Groups"]["MaxConcurrency"] == 2
    assert check_definition(deployed) == []

    # The tasks the execution started: one worker per group, then the global phases.
    commands = _recorded_commands(ecs, cluster)
    workers = [c for c in commands if c[1] == "worker"]
    finish = [c for c in commands if c[1:3] == ["aws", "finish"]]
    assert sorted(int(c[c.index("--index") + 1]) for c in workers) == [g["group"] for g in groups]
    assert len(finish) == 1
    for command in [*sorted(workers, key=lambda c: c[-1]), *finish]:
        assert command[0] == "chrono"
        ran = _chrono(*command[1:], *work, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr

    artifacts = {o["Key"] for o in s3.list_objects_v2(Bucket=names["art"])["Contents"]}
    assert {f"groups/{g['group']}/extracted.ndjson" for g in groups} <= artifacts
    assert any(k.startswith("artifacts/") for k in artifacts)
    reports = {o["Key"] for o in s3.list_objects_v2(Bucket=names["rep"])["Contents"]}
    assert "reports/report.json" in reports
    record = json.loads(s3.get_object(
        Bucket=names["rep"], Key=f"reports/executions/{groups[0]['schedule_id']}.json"
    )["Body"].read())
    assert record["execution_arn"] == execution_arn

    ref = _chrono("run", str(prod), str(tmp_path / "ref"), "--quiet", "--workers", "1",
                  cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    events = exported(db, tmp_path)
    assert events and events == exported(f"sqlite:///{tmp_path / 'ref' / 'chrono.db'}", tmp_path)
    kinds = {json.loads(e)["type"] for e in events}
    assert {"email", "call"} <= kinds


def test_execute_needs_a_role(moto_endpoint: str, tmp_path: Path) -> None:
    from chrono.scale.aws import launch
    from chrono.scale.schedule import Schedule

    plan = Schedule("s-1", "s3://inv/sched/groups.ndjson", [], [])
    options = AwsOptions(role_arn=None, subnets=("subnet-1",))
    with pytest.raises(ConfigError) as err:
        launch(_settings(endpoint_url=moto_endpoint), plan, options)
    assert err.value.code == "state_machine_role_missing"
    with pytest.raises(ConfigError) as err:
        launch(_settings(endpoint_url=moto_endpoint), plan,
               AwsOptions(role_arn="arn:aws:iam::1:role/r", subnets=()))
    assert err.value.code == "subnets_missing"


def test_aws_mode_refuses_local_folders_before_scheduling(tmp_path: Path) -> None:
    prod = _production(tmp_path / "prod")
    proc = _chrono("schedule", "--mode", "aws", "--source-bucket", str(prod),
                   "--inventory-bucket", str(tmp_path / "inv"), "--artifact-bucket", "s3://art",
                   "--report-bucket", "s3://rep", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "aws_bucket_not_s3" in proc.stderr
    assert not (tmp_path / "inv").exists()
