"""Scale-out over S3 (moto's server): sources staged, artifacts published and mirrored, the same
timeline as ``chrono run`` of a local copy, and re-runs that add nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import boto3

from tests.scale.conftest import EML, cli, exported, tiny_production, tiny_volume


def _upload(client: Any, bucket: str, prefix: str, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_s3_buckets_give_the_same_events(moto_endpoint: str, tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod")
    tiny_volume(prod, "VOL001")
    with zipfile.ZipFile(prod / "bundle.zip", "w") as zf:  # children: blobs travel too
        zf.writestr("inner/forwarded.eml", EML.format(n=77))
        zf.writestr("inner/m1-copy.eml", EML.format(n=1))
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    for name in ("scale-src", "scale-inv", "scale-art", "scale-rep"):
        client.create_bucket(Bucket=name)
    _upload(client, "scale-src", "case-1", prod)

    ref = cli("run", str(prod), str(tmp_path / "ref"), "--quiet", "--workers", "2",
              cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    args = ["--source-bucket", "s3://scale-src/case-1", "--inventory-bucket", "s3://scale-inv",
            "--artifact-bucket", "s3://scale-art/a", "--report-bucket", "s3://scale-rep/r",
            "--endpoint-url", moto_endpoint, "--work-dir", str(tmp_path / "work"),
            "--db", f"sqlite:///{tmp_path / 'timeline.db'}", "--minimum-batch-size", "3",
            "--workers", "2", "--quiet"]
    proc = cli("schedule", "--mode", "local", *args, "--execute", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    db = f"sqlite:///{tmp_path / 'timeline.db'}"
    assert exported(db, tmp_path) == exported(f"sqlite:///{tmp_path / 'ref' / 'chrono.db'}",
                                              tmp_path)

    keys = {o["Key"] for o in client.list_objects_v2(Bucket="scale-art")["Contents"]}
    assert any(k.startswith("a/blobs/") for k in keys)
    assert any(k.startswith("a/events/") for k in keys)
    assert "a/groups/0/extracted.ndjson" in keys and "a/inventory/extracted.ndjson" in keys
    report = json.loads(client.get_object(Bucket="scale-rep", Key="r/report.json")["Body"].read())
    ref_report = json.loads((tmp_path / "ref" / "report.json").read_text())
    assert report["counts"] == ref_report["counts"]
    assert not list((tmp_path / "work" / "groups").iterdir())  # private folders are removed

    again = cli("worker", "--groups", "s3://scale-inv", "--index", "1", "--endpoint-url",
                moto_endpoint, "--work-dir", str(tmp_path / "work"), cwd=tmp_path)
    assert json.loads(again.stdout.splitlines()[-1])["status"] == "skipped"

    rerun = cli("schedule", "--mode", "local", *args, "--execute", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 in 0 groups" in " ".join(rerun.stderr.split())
    report = json.loads(client.get_object(Bucket="scale-rep", Key="r/report.json")["Body"].read())
    upload = next(s for s in report["steps"] if s["name"] == "upload")
    assert upload["counts"]["events_added"] == 0 and upload["counts"]["files_added"] == 0
