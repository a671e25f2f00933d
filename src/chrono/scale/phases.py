"""The global phases, once every group is committed: merge, then the seed's order from events on.

Merge reads every group's ``groups/<N>/extracted.ndjson`` and settles the whole source's
inventory with the extraction step's own function, so the choices are exactly those of one
``chrono run``: load files first, then the first copy of each content by path is canonical and
the others are ``duplicate same_content`` (across groups too); only canonical files' children
count. Nothing is extracted again: every artifact exists, and a file that no group extracted
(none, unless the source changed under the schedule) is extracted here. Then events, upload,
dedupe, persons, devices and mapping run as in ``chrono run`` over a local view of the artifact
bucket (the bucket itself when it is a folder, else a mirror pulled first and pushed after), and
the run report goes to the report bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chrono.core.crashpoints import crash_point
from chrono.core.errors import ConfigError
from chrono.core.logging import log_event
from chrono.core.steps import Pipeline, RunLedger
from chrono.evidence import inventory as inv
from chrono.evidence.context import EvidenceRun
from chrono.evidence.detect import detect_kind
from chrono.evidence.extraction import artifact_key, extract_all, load_artifact
from chrono.evidence.pipeline import EXTRACTED_KEY, extracted_rows, pipeline, run_evidence
from chrono.scale.schedule import Schedule, group_entries, load_schedule
from chrono.scale.settings import GLOBAL_STEPS, ScaleSettings
from chrono.scale.staging import ArtifactView, SourceStage, publish_file, read_lines
from chrono.scale.worker import group_committed, group_rows
from chrono.storage.buckets import open_bucket
from chrono.storage.local import LocalBucket

REPORT_KEYS = ("report.json", "report.html")

scale_pipeline: Pipeline[EvidenceRun] = Pipeline("scale")
"""``merge`` followed by the evidence pipeline's global steps (the same step objects)."""


@dataclass
class MergePlan:
    """What the merge step needs besides the run: files, worker results, where bytes are."""

    entries: list[inv.FileEntry]
    """Every top-level file of the schedule."""
    extracted: set[str]
    """Contents this schedule's workers extracted (their files count as processed)."""
    kinds: dict[str, str]
    """file_id -> kind of contained files, as workers (or the last merge) detected it."""
    view: ArtifactView
    stage: SourceStage
    groups: int
    extracted_here: list[str] = field(default_factory=list)

    def child_kind(self, child: inv.FileEntry) -> str:
        known = self.kinds.get(child.file_id)
        if known is not None:
            return known
        if child.blob and self.view.ensure(child.blob):
            return detect_kind(self.view.root / child.blob)
        if self.view.ensure(artifact_key(child.sha256)):
            return load_artifact(LocalBucket(self.view.root), child.sha256).kind
        return "unknown"

    def before_extract(self, todo: list[inv.FileEntry]) -> None:
        """Files no group extracted: bring their bytes here (sources staged, blobs pulled)."""
        self.extracted_here.extend(e.file_id for e in todo)
        self.stage.fetch([e for e in todo if not e.depth])
        for e in todo:
            if e.depth and e.blob:
                self.view.ensure(e.blob)


@scale_pipeline.step("merge", inputs=("groups/",), outputs=(inv.FILES_KEY, EXTRACTED_KEY))
def merge_step(run: EvidenceRun) -> dict[str, Any]:
    """Merge every group's results into one inventory with outcomes, as one run decides them."""
    plan: MergePlan = run.state["merge_plan"]
    overwrite, run.overwrite = run.overwrite, False  # merging reuses, never redoes, artifacts
    try:
        counts = extract_all(
            run, [inv.FileEntry(**e.to_dict()) for e in plan.entries],
            extracted_elsewhere=plan.extracted, child_kind=plan.child_kind,
            before_extract=plan.before_extract,
        )
    finally:
        run.overwrite = overwrite
    inv.save_inventory(run, plan.entries)
    crash_point("merge.inventory")
    run.bucket.put_lines(EXTRACTED_KEY, extracted_rows(run.state["entries"], run.state["outcomes"]))
    if plan.extracted_here:
        log_event("merge_extracted_leftovers", count=len(plan.extracted_here))
    counts["groups"] = plan.groups
    counts["extracted_in_merge"] = counts.pop("extracted")
    return counts


for _step in pipeline.steps:
    if _step.name in GLOBAL_STEPS:
        scale_pipeline.register(_step)


def _merge_plan(schedule: Schedule, view: ArtifactView, stage: SourceStage) -> MergePlan:
    artifacts = view.bucket
    missing = [g["group"] for g in schedule.groups
               if not group_committed(artifacts, g["group"], group_entries(g))]
    if missing:
        raise ConfigError(
            "extraction_missing",
            f"{len(missing)} of {len(schedule.groups)} groups have no results (first: group "
            f"{missing[0]}); run them first (chrono schedule --execute, or chrono worker)",
        )
    kinds: dict[str, str] = {}
    if (view.root / EXTRACTED_KEY).is_file():  # kinds of files inside unscheduled ones
        last = read_lines(LocalBucket(view.root), EXTRACTED_KEY)
        kinds.update((r["file_id"], r["kind"]) for r in last if r["depth"])
    extracted: set[str] = set()
    for g in schedule.groups:
        for row in group_rows(artifacts, g["group"]):
            if row["depth"]:
                kinds[row["file_id"]] = row["kind"]
            if row["outcome"] == "processed":
                extracted.add(row["sha256"])
    return MergePlan(schedule.entries, extracted, kinds, view, stage, len(schedule.groups))


def run_global_phases(settings: ScaleSettings, schedule: Schedule | None = None) -> RunLedger:
    """Merge, then the selected global steps; the report lands in the report bucket."""
    schedule = schedule or load_schedule(settings.groups_url, endpoint_url=settings.endpoint_url)
    view = ArtifactView(settings.artifact_url, endpoint_url=settings.endpoint_url,
                        work_dir=settings.work_dir)
    view.pull(["artifacts/", "events/"], refresh=settings.overwrite)
    view.pull([EXTRACTED_KEY], refresh=True)  # the last merge, wherever it ran
    stage = SourceStage(settings.source_url, endpoint_url=settings.endpoint_url,
                        work_dir=settings.work_dir)
    plan = _merge_plan(schedule, view, stage)
    run = EvidenceRun(
        source_dir=stage.root, artifact_dir=view.root, config=settings.config,
        db_url=settings.db_url, passwords=settings.passwords.values, workers=settings.workers,
        overwrite=settings.overwrite, skip_event_generation=settings.skip_event_generation,
        show_progress=settings.show_progress, source_key=stage.source_key,
        pool_start_method="forkserver",  # this process may hold a Dask client's threads
    )
    run.state["merge_plan"] = plan
    try:
        return run_evidence(run, ["merge", *settings.global_steps], pipe=scale_pipeline)
    finally:
        view.push()
        _publish_report(settings, view, run.run_id)


def _publish_report(settings: ScaleSettings, view: ArtifactView, run_id: str) -> None:
    reports = open_bucket(settings.report_url, endpoint_url=settings.endpoint_url)
    reports.clean_temp()  # what a killed run left half-published
    for key in (*REPORT_KEYS, f"runs/{run_id}.json"):
        path = view.root / key
        if path.is_file():
            publish_file(reports, key, path)
