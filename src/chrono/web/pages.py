"""The HTML pages: login, dashboard, timeline, events, runs, persons, devices, sensors, scenarios.

Pages are rendered on the server from the same reads as the API (:mod:`chrono.web.timeline`,
:mod:`chrono.web.identity`, :mod:`chrono.web.streams`). Forms POST with the session's CSRF token
and a "by" field naming the user, and answer with a redirect (post/redirect/get).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from chrono.core.errors import ChronoError
from chrono.evidence import corrections
from chrono.sensors.model import METRICS
from chrono.sensors.scenarios import SCENARIOS
from chrono.web import identity, timeline
from chrono.web.api import event_filters
from chrono.web.auth import SESSION_COOKIE, Principal
from chrono.web.context import AppContext, app_context, require_principal
from chrono.web.streams import TABS
from chrono.web.svg import band_svg, histogram_svg

# CSS and JS are inlined from static/ (a login page must style itself before any session
# exists, and every route but /health needs one).
TEMPLATES = Jinja2Templates(directory=[str(Path(__file__).with_name("templates")),
                                       str(Path(__file__).with_name("static"))])
PAGE_ROWS = 50
CHARTS_PER_PAGE = 12

Ctx = Annotated[AppContext, Depends(app_context)]
Who = Annotated[Principal, Depends(require_principal)]

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_principal)])


def render(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    ctx: AppContext = request.app.state.ctx
    who = ctx.auth.principal(request)
    values.setdefault("error", None)
    values.setdefault("done", request.query_params.get("done"))
    return TEMPLATES.TemplateResponse(
        request, name, {"csrf": who.csrf if who else None, "nav": name.split(".")[0],
                        **values}, status_code=status_code)


def login_page(request: Request, status_code: int = 200, error: str | None = None,
               next_path: str = "/") -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "login.html", {
        "error": error, "next": _local(next_path), "csrf": None, "nav": "login"},
        status_code=status_code)


def _local(path: str | None) -> str:
    """Only same-site paths may follow a login (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _back(path: str, **params: Any) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _csrf(ctx: AppContext, who: Principal, token: str) -> None:
    if not ctx.auth.check_csrf(who, token):
        raise HTTPException(403, "csrf_invalid")


# ----------------------------------------------------------------- login
@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return login_page(request, next_path=next)


@public.post("/login")
def login(request: Request, ctx: Ctx, token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    if not token or not ctx.auth.token_ok(token.strip()):
        return login_page(request, 401, "That token is not valid.", next)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, ctx.auth.new_session(), max_age=ctx.auth.session_seconds,
                        httponly=True, samesite="lax", secure=ctx.settings.secure_cookie,
                        path="/")
    return response


@router.post("/logout")
def logout(ctx: Ctx, who: Who, csrf: Annotated[str, Form()] = "") -> Response:
    _csrf(ctx, who, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ----------------------------------------------------------------- dashboard and timeline
@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        counts = timeline.timeline_counts(conn)
    runs = ctx.all_runs()
    return render(request, "dashboard.html", counts=counts, scenarios=ctx.scenario_setting(),
                  evidence_runs=runs["evidence"][:5], sensor_runs=runs["sensor"][:5])


@router.get("/timeline", response_class=HTMLResponse)
def timeline_page(request: Request, ctx: Ctx,
                  f: Annotated[timeline.EventFilters, Depends(event_filters)],
                  after: str | None = None, before: str | None = None) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        page = timeline.page_events(conn, f, after, before, PAGE_ROWS)
        hist = timeline.event_histogram(conn, f)
        person = identity.person_detail(conn, f.person) if f.person else None
        device = identity.device_detail(conn, f.device) if f.device else None
    args = f.query_args()
    return render(request, "timeline.html", page=page, f=f, hist=hist,
                  chart=histogram_svg(hist["bars"], hist["bucket"]), types=timeline.EVENT_TYPES,
                  person=person, device=device,
                  next_url=f"?{urlencode({**args, 'after': page.next_cursor})}"
                  if page.next_cursor else None,
                  prev_url=f"?{urlencode({**args, 'before': page.prev_cursor})}"
                  if page.prev_cursor else None)


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_page(request: Request, ctx: Ctx, event_id: str) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        event = timeline.event_detail(conn, event_id)
    if event is None:
        raise HTTPException(404, "event_unknown")
    return render(request, "event.html", event=event)


# ----------------------------------------------------------------- runs
@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, ctx: Ctx) -> HTMLResponse:
    return render(request, "runs.html", runs=ctx.all_runs())


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, ctx: Ctx, run_id: str, outcome: str | None = None,
             reason: str | None = None, offset: int = 0) -> HTMLResponse:
    run = ctx.find_run(run_id)
    if run is None:
        raise HTTPException(404, "run_unknown")
    files = None
    if run["kind"] == "evidence":
        with ctx.engine.connect() as conn:
            files = timeline.run_files(conn, run, outcome or None, reason or None,
                                       max(0, offset), 100)
    return render(request, "run.html", run=run, files=files, outcome=outcome or "",
                  reason=reason or "")


# ----------------------------------------------------------------- persons and devices
@router.get("/persons", response_class=HTMLResponse)
def persons_page(request: Request, ctx: Ctx, q: str | None = None, offset: int = 0
                 ) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        listing = identity.list_persons(conn, q, max(0, offset), PAGE_ROWS)
        audit = identity.corrections_list(conn, "person")[:20]
    return render(request, "persons.html", listing=listing, q=q or "", audit=audit)


@router.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, ctx: Ctx, person_id: str) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        person = identity.person_detail(conn, person_id)
    if person is None:
        raise HTTPException(404, "person_unknown")
    return render(request, "person.html", person=person)


@router.post("/persons/merge")
def persons_merge(request: Request, ctx: Ctx, who: Who,
                  ids: Annotated[list[str], Form()], by: Annotated[str, Form()] = "",
                  csrf: Annotated[str, Form()] = "") -> Response:
    _csrf(ctx, who, csrf)
    try:
        done = corrections.merge_persons(ctx.engine, ids, by, ctx.identity, ctx.region)
    except ChronoError as exc:
        return _failed(request, ctx, "persons", exc)
    return _back("/persons", done=f"merge {done.correction_id} recorded")


@router.post("/persons/{person_id}/unmerge")
def persons_unmerge(request: Request, ctx: Ctx, who: Who, person_id: str,
                    by: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
                    ) -> Response:
    _csrf(ctx, who, csrf)
    try:
        done = corrections.unmerge_person(ctx.engine, person_id, by, ctx.identity, ctx.region)
    except ChronoError as exc:
        return _failed(request, ctx, "persons", exc)
    return _back("/persons", done=f"unmerge {done.correction_id} recorded")


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request, ctx: Ctx, q: str | None = None, kind: str | None = None,
                 offset: int = 0) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        listing = identity.list_devices(conn, q, kind or None, max(0, offset), PAGE_ROWS)
        audit = identity.corrections_list(conn, "device")[:20]
    return render(request, "devices.html", listing=listing, q=q or "", kind=kind or "",
                  audit=audit)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(request: Request, ctx: Ctx, device_id: str) -> HTMLResponse:
    with ctx.engine.connect() as conn:
        device = identity.device_detail(conn, device_id)
    if device is None:
        raise HTTPException(404, "device_unknown")
    return render(request, "device.html", device=device)


@router.post("/devices/merge")
def devices_merge(request: Request, ctx: Ctx, who: Who,
                  ids: Annotated[list[str], Form()], by: Annotated[str, Form()] = "",
                  csrf: Annotated[str, Form()] = "") -> Response:
    _csrf(ctx, who, csrf)
    try:
        done = corrections.merge_devices(ctx.engine, ids, by, ctx.identity, ctx.region)
    except ChronoError as exc:
        return _failed(request, ctx, "devices", exc)
    return _back("/devices", done=f"merge {done.correction_id} recorded")


@router.post("/devices/{device_id}/unmerge")
def devices_unmerge(request: Request, ctx: Ctx, who: Who, device_id: str,
                    by: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
                    ) -> Response:
    _csrf(ctx, who, csrf)
    try:
        done = corrections.unmerge_device(ctx.engine, device_id, by, ctx.identity, ctx.region)
    except ChronoError as exc:
        return _failed(request, ctx, "devices", exc)
    return _back("/devices", done=f"unmerge {done.correction_id} recorded")


def _failed(request: Request, ctx: AppContext, what: str, exc: ChronoError) -> HTMLResponse:
    # Correction errors carry only codes, ids and counts, so they can be shown as they are.
    return render(request, "error.html", 400, error=str(exc), back=f"/{what}")


# ----------------------------------------------------------------- sensors
@router.get("/sensors")
def sensors_root() -> Response:
    return RedirectResponse("/sensors/windows", status_code=307)


@router.get("/sensors/{tab}", response_class=HTMLResponse)
def sensors_page(request: Request, ctx: Ctx, tab: str, sensor: str | None = None,
                 rule: str | None = None, metric: str = METRICS[0],
                 start: str | None = None, end: str | None = None, offset: int = 0,
                 chart_page: int = 0) -> HTMLResponse:
    if tab not in TABS:
        raise HTTPException(404, "tab_unknown")
    data = ctx.sensors
    offset = max(0, offset)
    values: dict[str, Any] = {"tab": tab, "tabs": TABS, "sensor": sensor or "",
                              "rule": rule or "", "metric": metric, "metrics": METRICS,
                              "start": start or "", "end": end or "", "offset": offset,
                              "rows": PAGE_ROWS}
    if tab in ("raw", "schematized"):
        values["listing"] = data.readings(tab, sensor or None, offset, PAGE_ROWS)
    elif tab == "errors":
        values["listing"] = data.errors(rule or None, offset, PAGE_ROWS)
    elif tab == "windows":
        listing = data.windows(sensor or None, start or None, end or None, offset, PAGE_ROWS,
                               metric)
        every = listing["sensors"]
        shown = [sensor] if sensor else every[chart_page * CHARTS_PER_PAGE:
                                              (chart_page + 1) * CHARTS_PER_PAGE]
        series = data.series(shown, metric, start or None, end or None)
        values.update(listing=listing, chart_page=chart_page,
                      chart_pages=max(1, -(-len(every) // CHARTS_PER_PAGE)),
                      charts=[(s["sensor_id"], band_svg(
                          s["points"], f"{s['sensor_id']} {series['metric']}"))
                          for s in series["series"]])
    elif tab == "anomalies":
        values.update(anomalies=data.anomalies(),
                      listing=data.notifications(offset, PAGE_ROWS))
    else:
        values["listing"] = data.late(offset, PAGE_ROWS)
    return render(request, "sensors.html", **values)


# ----------------------------------------------------------------- scenarios
@router.get("/scenarios", response_class=HTMLResponse)
def scenarios_page(request: Request, ctx: Ctx) -> HTMLResponse:
    store = ctx.sensors.store()
    return render(request, "scenarios.html", current=ctx.scenario_setting(),
                  all_scenarios=SCENARIOS, history=ctx.scenario_history(20),
                  executions=[e.as_dict() for e in store.executions(20)], stats=store.stats())


@router.post("/scenarios")
def scenarios_set(request: Request, ctx: Ctx, who: Who,
                  scenarios: Annotated[list[str] | None, Form()] = None,
                  by: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
                  ) -> Response:
    _csrf(ctx, who, csrf)
    try:
        setting = ctx.sensors.store().set(scenarios or [], by)
    except ChronoError as exc:
        return _failed(request, ctx, "scenarios", exc)
    return _back("/scenarios", done=f"setting {setting.setting_id} recorded")
