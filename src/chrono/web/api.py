"""The JSON API under ``/api/``: timeline, runs, persons, devices, sensors and scenarios.

Every route needs the token (``Authorization: Bearer TOKEN``) or a browser session; a write
from a session also needs its CSRF token in the ``X-CSRF-Token`` header. Writes name the user
making the change (``by``), which the audit trail records.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from chrono.evidence import corrections
from chrono.sensors.model import METRICS
from chrono.sensors.scenarios import SCENARIOS
from chrono.web import identity, timeline
from chrono.web.auth import Principal
from chrono.web.context import AppContext, app_context, require_principal
from chrono.web.streams import TABS

router = APIRouter(prefix="/api", dependencies=[Depends(require_principal)])

Ctx = Annotated[AppContext, Depends(app_context)]
Who = Annotated[Principal, Depends(require_principal)]
Offset = Annotated[int, Query(ge=0, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Rows per page.")]


def event_filters(
    person: str | None = None, device: str | None = None,
    type: Annotated[str | None, Query(description="email | call | message | document")] = None,
    start: Annotated[str | None, Query(description="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, Query(description="Last day, YYYY-MM-DD (inclusive).")] = None,
    q: Annotated[str | None, Query(max_length=timeline.MAX_QUERY_CHARS,
                                   description="Text in subject or body.")] = None,
    undated: bool = False, duplicates: bool = True,
) -> timeline.EventFilters:
    return timeline.EventFilters(person=person or None, device=device or None,
                                 type=type or None, start=start or None, end=end or None,
                                 q=q or None, undated=undated, duplicates=duplicates)


Filters = Annotated[timeline.EventFilters, Depends(event_filters)]


def check_csrf(request: Request, who: Who,
               x_csrf_token: Annotated[str | None, Header()] = None) -> None:
    if not request.app.state.ctx.auth.check_csrf(who, x_csrf_token):
        raise HTTPException(403, "csrf_invalid: send the session's CSRF token")


Csrf = Depends(check_csrf)


# ----------------------------------------------------------------- timeline
@router.get("/events", summary="A page of the timeline (keyset paging on start, id)")
def list_events(ctx: Ctx, f: Filters, after: str | None = None, before: str | None = None,
                limit: Limit = 50) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return timeline.page_events(conn, f, after, before, limit).to_dict()


@router.get("/events/histogram", summary="Events per hour, day, week or month")
def events_histogram(ctx: Ctx, f: Filters) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return timeline.event_histogram(conn, f)


@router.get("/events/{event_id}", summary="One event with participants, provenance, copies")
def get_event(ctx: Ctx, event_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        found = timeline.event_detail(conn, event_id)
    if found is None:
        raise HTTPException(404, "event_unknown")
    return found


# ----------------------------------------------------------------- runs
@router.get("/runs", summary="Evidence and sensor runs, newest first")
def list_runs(ctx: Ctx) -> dict[str, Any]:
    return ctx.all_runs()


@router.get("/runs/{run_id}", summary="One run: steps with counts and timings")
def get_run(ctx: Ctx, run_id: str) -> dict[str, Any]:
    found = ctx.find_run(run_id)
    if found is None:
        raise HTTPException(404, "run_unknown")
    return found


@router.get("/runs/{run_id}/files", summary="Each file of an evidence run: outcome and reason")
def get_run_files(ctx: Ctx, run_id: str, outcome: str | None = None,
                  reason: str | None = None, offset: Offset = 0, limit: Limit = 100
                  ) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        run = timeline.evidence_run(conn, run_id)
        if run is None:
            raise HTTPException(404, "run_unknown")
        return timeline.run_files(conn, run, outcome or None, reason or None, offset, limit)


# ----------------------------------------------------------------- persons and devices
class MergeRequest(BaseModel):
    ids: list[str] = Field(min_length=2, description="Two or more ids to merge.")
    by: str = Field(min_length=1, max_length=128, description="Who makes the change.")


class UnmergeRequest(BaseModel):
    by: str = Field(min_length=1, max_length=128, description="Who makes the change.")


@router.get("/persons", summary="Persons, most identifiers first")
def list_persons(ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
                 offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return identity.list_persons(conn, q, offset, limit)


@router.get("/persons/{person_id}", summary="One person: identifiers, devices, merges")
def get_person(ctx: Ctx, person_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        found = identity.person_detail(conn, person_id)
    if found is None:
        raise HTTPException(404, "person_unknown")
    return found


@router.post("/persons/merge", summary="Merge persons (audited)", dependencies=[Csrf])
def merge_persons(ctx: Ctx, body: MergeRequest) -> dict[str, Any]:
    done = corrections.merge_persons(ctx.engine, body.ids, body.by, ctx.identity, ctx.region)
    return ctx.correction_result(done, "person")


@router.post("/persons/{person_id}/unmerge", summary="Unmerge a person (audited)",
             dependencies=[Csrf])
def unmerge_person(ctx: Ctx, person_id: str, body: UnmergeRequest) -> dict[str, Any]:
    done = corrections.unmerge_person(ctx.engine, person_id, body.by, ctx.identity, ctx.region)
    return ctx.correction_result(done, "person")


@router.get("/devices", summary="Devices by kind and value")
def list_devices(ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
                 kind: str | None = None, offset: Offset = 0, limit: Limit = 50
                 ) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return identity.list_devices(conn, q, kind or None, offset, limit)


@router.get("/devices/{device_id}", summary="One device: identifiers, persons, merges")
def get_device(ctx: Ctx, device_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        found = identity.device_detail(conn, device_id)
    if found is None:
        raise HTTPException(404, "device_unknown")
    return found


@router.post("/devices/merge", summary="Merge devices (audited)", dependencies=[Csrf])
def merge_devices(ctx: Ctx, body: MergeRequest) -> dict[str, Any]:
    done = corrections.merge_devices(ctx.engine, body.ids, body.by, ctx.identity, ctx.region)
    return ctx.correction_result(done, "device")


@router.post("/devices/{device_id}/unmerge", summary="Unmerge a device (audited)",
             dependencies=[Csrf])
def unmerge_device(ctx: Ctx, device_id: str, body: UnmergeRequest) -> dict[str, Any]:
    done = corrections.unmerge_device(ctx.engine, device_id, body.by, ctx.identity, ctx.region)
    return ctx.correction_result(done, "device")


@router.get("/corrections", summary="The audit trail of manual merges, newest first")
def list_corrections(ctx: Ctx, entity: str | None = None) -> dict[str, Any]:
    if entity not in (None, "", *corrections.ENTITIES):
        raise HTTPException(400, "entity is person or device")
    with ctx.engine.connect() as conn:
        return {"items": identity.corrections_list(conn, entity or None)}


# ----------------------------------------------------------------- sensors
@router.get("/sensors", summary="Sensor tabs and where each stream is read from")
def sensors_overview(ctx: Ctx) -> dict[str, Any]:
    return {"tabs": list(TABS), "metrics": list(METRICS),
            "streams": {s: vars(ctx.sensors.location(s))
                        for s in ("raw", "schematized", "errors", "windows", "late")}}


@router.get("/sensors/readings/{stream}", summary="Raw or schematized readings, newest first")
def sensor_readings(ctx: Ctx, stream: str, sensor: str | None = None, offset: Offset = 0,
                    limit: Limit = 50) -> dict[str, Any]:
    if stream not in ("raw", "schematized"):
        raise HTTPException(404, "stream is raw or schematized")
    return ctx.sensors.readings(stream, sensor or None, offset, limit)


@router.get("/sensors/errors", summary="Invalid readings: counts by rule and examples")
def sensor_errors(ctx: Ctx, rule: str | None = None, offset: Offset = 0, limit: Limit = 50
                  ) -> dict[str, Any]:
    return ctx.sensors.errors(rule or None, offset, limit)


@router.get("/sensors/windows", summary="The latest version of each window, newest first")
def sensor_windows(ctx: Ctx, sensor: str | None = None,
                   metric: Annotated[str, Query(description=", ".join(METRICS))] = METRICS[0],
                   start: Annotated[str | None, Query(
                       description="YYYY-MM-DD, ISO time, or last:<hours>")] = None,
                   end: str | None = None, offset: Offset = 0, limit: Limit = 50
                   ) -> dict[str, Any]:
    return ctx.sensors.windows(sensor or None, start or None, end or None, offset, limit,
                               metric)


@router.get("/sensors/windows/series", summary="Mean and min-max of a metric per sensor")
def sensor_series(ctx: Ctx, sensor: Annotated[list[str] | None, Query()] = None,
                  metric: str = METRICS[0], start: str | None = None, end: str | None = None
                  ) -> dict[str, Any]:
    sensors = sensor or ctx.sensors.sensor_ids()[:12]
    return ctx.sensors.series(sensors, metric, start or None, end or None)


@router.get("/sensors/anomalies", summary="Flagged readings by anomaly type and location")
def sensor_anomalies(ctx: Ctx) -> dict[str, Any]:
    return ctx.sensors.anomalies()


@router.get("/sensors/notifications", summary="Notifications in the local queue file")
def sensor_notifications(ctx: Ctx, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    return ctx.sensors.notifications(offset, limit)


@router.get("/sensors/late", summary="Readings too late for their window")
def sensor_late(ctx: Ctx, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    return ctx.sensors.late(offset, limit)


# ----------------------------------------------------------------- scenarios
class ScenarioRequest(BaseModel):
    scenarios: list[str] = Field(description=f"Scenarios to activate: {', '.join(SCENARIOS)}.")
    by: str = Field(min_length=1, max_length=128, description="Who makes the change.")


@router.get("/scenarios", summary="The active scenarios, who set them and when")
def get_scenarios(ctx: Ctx) -> dict[str, Any]:
    return ctx.scenario_setting()


@router.put("/scenarios", summary="Activate exactly these scenarios (recorded)",
            dependencies=[Csrf])
def set_scenarios(ctx: Ctx, body: ScenarioRequest) -> dict[str, Any]:
    ctx.sensors.store().set(body.scenarios, body.by)
    return ctx.scenario_setting()


@router.get("/scenarios/history", summary="Past scenario changes, newest first")
def scenario_history(ctx: Ctx, limit: Limit = 50) -> dict[str, Any]:
    return {"items": ctx.scenario_history(limit)}


@router.get("/scenarios/executions", summary="Pipeline executions, newest first")
def scenario_executions(ctx: Ctx, limit: Limit = 50) -> dict[str, Any]:
    return {"items": [e.as_dict() for e in ctx.sensors.store().executions(limit)]}


@router.get("/scenarios/stats", summary="Executions per status, totals, runs per scenario")
def scenario_stats(ctx: Ctx) -> dict[str, Any]:
    return ctx.sensors.store().stats()
