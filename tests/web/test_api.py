"""The JSON API and the pages over a real Chrono world, on SQLite and PostgreSQL: auth on every
route, keyset paging, filters, event pages, runs, identity corrections, sensors, scenarios."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.db.test_identity_db import person_of
from tests.web.conftest import TOKEN, World

from chrono.db import schema
from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.outputs import latest_windows, read_stream
from chrono.storage.buckets import open_bucket
from chrono.web import WebSettings, create_app
from chrono.web.settings import TOKEN_ENV, resolve_token

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.settings)
    with TestClient(app) as c:
        yield c
    app.state.ctx.engine.dispose()


def get(client: TestClient, path: str, **params: object) -> dict:
    r = client.get(path, params=params, headers=AUTH)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def every_route(client: TestClient) -> list[tuple[str, str]]:
    out = []
    routes = list(client.app.routes)  # type: ignore[attr-defined]
    while routes:
        route = routes.pop(0)
        included = getattr(route, "original_router", None)  # an include_router() entry
        if included is not None:
            routes.extend(included.routes)
        elif isinstance(route, APIRoute):
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            out.extend((m, path) for m in sorted(route.methods or ()) if m != "HEAD")
    return out


def test_every_route_but_health_needs_the_token(client: TestClient) -> None:
    routes = every_route(client)
    assert ("GET", "/health") in routes and ("GET", "/docs") in routes
    assert ("GET", "/openapi.json") in routes and ("GET", "/api/events") in routes
    assert len(routes) > 40
    assert client.get("/health").json() == {"status": "ok"}
    for method, path in routes:
        if path in ("/health", "/login"):
            continue
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": TOKEN}, {"Cookie": "chrono_session=1.abc.def"}):
            r = client.request(method, path, headers=headers, follow_redirects=False)
            assert r.status_code == 401, (method, path, headers, r.status_code)
    html = client.get("/timeline", headers={"Accept": "text/html"})
    assert html.status_code == 401 and 'name="token"' in html.text
    api = client.get("/api/events")
    assert api.headers["www-authenticate"] == "Bearer" and "Budget" not in api.text


def test_docs_and_openapi_with_token(client: TestClient) -> None:
    spec = get(client, "/openapi.json")
    assert "/api/events" in spec["paths"] and "/api/sensors/windows" in spec["paths"]
    docs = client.get("/docs", headers=AUTH)
    assert docs.status_code == 200 and "/api/events/{event_id}" in docs.text
    assert client.get("/docs/swagger", headers=AUTH).status_code == 200


def test_login_sets_a_safe_session_cookie_and_csrf_guards_writes(client: TestClient,
                                                                 world: World) -> None:
    bad = client.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert bad.status_code == 401 and "session" not in bad.headers.get("set-cookie", "")
    r = client.post("/login", data={"token": TOKEN, "next": "//evil.test/x"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert TOKEN not in cookie
    session = {"Cookie": cookie.split(";")[0]}
    page = client.get("/scenarios", headers=session)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    # A session write without the CSRF token is refused; with it, it goes through.
    no = client.put("/api/scenarios", json={"scenarios": ["raw"], "by": "ann"}, headers=session)
    assert no.status_code == 403
    form = client.post("/scenarios", data={"scenarios": ["raw"], "by": "ann"}, headers=session,
                       follow_redirects=False)
    assert form.status_code == 403
    ok = client.post("/scenarios", data={"scenarios": ["raw", "lineage"], "by": "ann",
                                         "csrf": csrf.group(1)}, headers=session,
                     follow_redirects=False)
    assert ok.status_code == 303
    assert get(client, "/api/scenarios")["active"] == ["raw", "lineage"]
    out = client.post("/logout", data={"csrf": csrf.group(1)}, headers=session,
                      follow_redirects=False)
    assert out.status_code == 303 and "chrono_session=" in out.headers["set-cookie"]


def _all_dated(world: World) -> list[tuple[str, str]]:
    engine = schema.make_engine(world.db_url)
    e = schema.events
    with engine.connect() as conn:
        rows = conn.execute(select(e.c.start_utc, e.c.event_id).where(
            e.c.start_utc.is_not(None)).order_by(e.c.start_utc, e.c.event_id)).all()
    engine.dispose()
    return [(r.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), r.event_id) for r in rows]


def test_events_keyset_pages_cover_the_timeline_once(client: TestClient, world: World) -> None:
    want = _all_dated(world)
    assert len(want) >= 10
    got, cursor, pages = [], None, []
    while True:
        params = {"limit": 3, **({"after": cursor} if cursor else {})}
        page = get(client, "/api/events", **params)
        pages.append(page)
        got.extend((i["start"], i["id"]) for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == want
    back = get(client, "/api/events", limit=3, before=pages[2]["prev_cursor"])
    assert [i["id"] for i in back["items"]] == [i["id"] for i in pages[1]["items"]]
    assert client.get("/api/events", params={"after": "!!"}, headers=AUTH).status_code == 400


def test_event_filters(client: TestClient, world: World) -> None:
    calls = get(client, "/api/events", type="call", limit=500)["items"]
    assert calls and {i["type"] for i in calls} == {"call"}
    budget = get(client, "/api/events", q="BUDGET")["items"]
    assert len(budget) == 2 and all(i["subject"] == "Budget review" for i in budget)
    assert get(client, "/api/events", q="50%_off")["items"] == []
    day = get(client, "/api/events", start="2025-03-03", end="2025-03-03", limit=500)["items"]
    assert day and all(i["start"].startswith("2025-03-03") for i in day)
    engine = schema.make_engine(world.db_url)
    zeb = person_of(engine, "phone", "+15555215554")
    engine.dispose()
    mine = get(client, "/api/events", person=zeb, limit=500)["items"]
    assert mine and all(any(p["value"] for p in i["participants"]) for i in mine)
    dev = get(client, "/api/devices", q="+15555215554")["items"][0]
    by_device = get(client, "/api/events", device=dev["id"], limit=500)["items"]
    assert {i["id"] for i in by_device} >= {i["id"] for i in mine if i["type"] == "call"}
    hist = get(client, "/api/events/histogram")
    assert hist["total"] == len(_all_dated(world)) == sum(b["count"] for b in hist["bars"])
    assert get(client, "/api/events/histogram", type="call")["total"] == len(calls)
    no_copies = get(client, "/api/events", q="budget", duplicates="false")["items"]
    assert len(no_copies) == 1


def test_event_page_has_participants_provenance_and_copies(client: TestClient) -> None:
    copies = [i for i in get(client, "/api/events", q="budget")["items"] if i["duplicate_of"]]
    assert len(copies) == 1
    survivor = get(client, f"/api/events/{copies[0]['duplicate_of']}")
    assert [d["id"] for d in survivor["duplicates"]] == [copies[0]["id"]]
    assert survivor["source"]["path"].endswith(".eml")
    assert {p["role"] for p in survivor["participants"]} >= {"from", "to"}
    assert client.get("/api/events/nope", headers=AUTH).status_code == 404
    html = client.get(f"/events/{survivor['id']}", headers=AUTH)
    assert (html.status_code == 200 and "mail-copy.eml" in html.text) or "mail.eml" in html.text


def test_runs(client: TestClient, world: World) -> None:
    runs = get(client, "/api/runs")
    assert [r["run_id"] for r in runs["evidence"]] == [world.evidence_run_id]
    assert runs["sensor"][0]["run_id"] == world.sensor.run_id
    assert runs["executions"][0]["run_id"] == world.sensor.run_id
    run = get(client, f"/api/runs/{world.evidence_run_id}")
    assert [s["name"] for s in run["steps"]][:2] == ["inventory", "extraction"]
    assert all("seconds" in s and "counts" in s for s in run["steps"])
    files = get(client, f"/api/runs/{world.evidence_run_id}/files")
    assert files["source"] == "report" and files["total"] == 4
    failed = get(client, f"/api/runs/{world.evidence_run_id}/files", outcome="failed")
    assert [f["path"] for f in failed["items"]] == ["blob.bin"] and failed["items"][0]["reason"]
    by_reason = get(client, f"/api/runs/{world.evidence_run_id}/files",
                    reason=failed["items"][0]["reason"])
    assert by_reason["matched"] == 1
    sensor = get(client, f"/api/runs/{world.sensor.run_id}")
    assert sensor["counts"]["processed"] == world.sensor.counts["processed"]
    assert {s["name"] for s in sensor["steps"]} >= {"read", "validate"}
    assert client.get("/api/runs/unknown", headers=AUTH).status_code == 404
    page = client.get(f"/runs/{world.evidence_run_id}", params={"outcome": "failed"},
                      headers=AUTH)
    assert page.status_code == 200 and "blob.bin" in page.text and "calls.csv" not in page.text


def test_persons_devices_merge_and_unmerge(client: TestClient, world: World) -> None:
    engine = schema.make_engine(world.db_url)
    a = person_of(engine, "email", "chris.lee@acme.test")
    b = person_of(engine, "email", "clee2@acme.test")
    engine.dispose()
    listed = get(client, "/api/persons", limit=500)
    assert {a, b} <= {p["id"] for p in listed["items"]}
    assert listed["total"] == len(listed["items"])
    one = get(client, f"/api/persons/{a}")
    assert one["identifiers"][0]["evidence"]["count"] >= 1
    merged = client.post("/api/persons/merge", json={"ids": [a, b], "by": "analyst"},
                         headers=AUTH)
    assert merged.status_code == 200, merged.text
    assert merged.json()["action"] == "merge" and merged.json()["by"] == "analyst"
    survivor = min(get(client, "/api/persons", q="Chris Lee")["items"],
                   key=lambda p: -p["identifier_count"])
    detail = get(client, f"/api/persons/{survivor['id']}")
    assert {i["value"] for i in detail["identifiers"]} >= {"chris.lee@acme.test",
                                                           "clee2@acme.test"}
    assert detail["merges"][0]["by"] == "analyst"
    split = client.post(f"/api/persons/{survivor['id']}/unmerge", json={"by": "analyst"},
                        headers=AUTH)
    assert split.status_code == 200 and split.json()["action"] == "unmerge"
    audit = get(client, "/api/corrections", entity="person")["items"]
    assert [c["action"] for c in audit[:2]] == ["unmerge", "merge"]
    refused = client.post("/api/persons/merge", json={"ids": [a, "missing"], "by": "x"},
                          headers=AUTH)
    assert refused.status_code == 400 and "Chris" not in refused.text
    assert client.post("/api/persons/merge", json={"ids": [a]}, headers=AUTH
                       ).status_code == 422

    phones = get(client, "/api/devices", kind="phone", limit=500)["items"]
    first, second = phones[0]["id"], phones[1]["id"]
    d = client.post("/api/devices/merge", json={"ids": [first, second], "by": "analyst"},
                    headers=AUTH)
    assert d.status_code == 200, d.text
    assert get(client, f"/api/devices/{second}")["merged_into"] == first
    assert second in get(client, f"/api/devices/{first}")["merged_from"]
    u = client.post(f"/api/devices/{first}/unmerge", json={"by": "analyst"}, headers=AUTH)
    assert u.status_code == 200
    assert get(client, f"/api/devices/{second}")["merged_into"] is None
    assert len(get(client, "/api/corrections", entity="device")["items"]) == 2
    assert client.get("/api/corrections", params={"entity": "x"}, headers=AUTH
                      ).status_code == 400
    assert client.get("/api/persons/none", headers=AUTH).status_code == 404
    assert client.get("/api/devices/none", headers=AUTH).status_code == 404


def _stream(cfg: SensorPipelineConfig, bucket: str, name: str):  # type: ignore[no-untyped-def]
    return read_stream(open_bucket(cfg.bucket_spec(bucket).url), name)


def test_sensors(client: TestClient, world: World) -> None:
    counts, cfg = world.sensor.counts, world.settings.pipeline
    raw = get(client, "/api/sensors/readings/raw", limit=10)
    assert raw["total"] == counts["processed"] and len(raw["items"]) == 10
    ids = [r["id"] for r in raw["items"]]
    assert ids == sorted(ids, reverse=True)
    valid = get(client, "/api/sensors/readings/schematized", sensor=raw["sensors"][0])
    assert valid["total"] == counts["valid"]
    assert {r["sensor_id"] for r in valid["items"]} == {raw["sensors"][0]}
    assert client.get("/api/sensors/readings/windows", headers=AUTH).status_code == 404
    errors = get(client, "/api/sensors/errors")
    assert errors["total"] == counts["invalid"]
    rules = {r["rule_id"]: r["records"] for r in errors["by_rule"]}
    assert rules["duplicate_reading"] == counts["duplicates"]
    assert all(set(i) == {"id", "timestamp", "sensor_id", "rule_id", "field"}
               for i in errors["items"])
    only = get(client, "/api/sensors/errors", rule="duplicate_reading")
    assert only["matched"] == rules["duplicate_reading"]

    want = latest_windows(_stream(cfg, "aggregated", "windows"))
    windows = get(client, "/api/sensors/windows", metric="humidity", limit=5)
    assert windows["total"] == want.height and len(windows["items"]) == 5
    assert "humidity_mean" in windows["items"][0]
    assert windows["items"][0]["window_start"] == windows["range"]["last"]
    sensor = windows["sensors"][0]
    one = get(client, "/api/sensors/windows", sensor=sensor, start="last:0.1", limit=500)
    assert 0 < one["matched"] < windows["total"]
    series = get(client, "/api/sensors/windows/series", sensor=sensor, metric="temperature")
    points = series["series"][0]["points"]
    assert len(points) == want.filter(want["sensor_id"] == sensor).height
    assert all(p["min"] <= p["mean"] <= p["max"] for p in points)

    notes = get(client, "/api/sensors/notifications")
    assert notes["total"] == counts["notifications"] >= 1
    assert notes["items"][0]["reading_ids"] and "readings" not in notes["items"][0]
    anomalies = get(client, "/api/sensors/anomalies")
    assert anomalies["flagged"] == sum(r["count"] for r in anomalies["by_type"])
    late = get(client, "/api/sensors/late")
    assert late["total"] == counts["late"]
    overview = get(client, "/api/sensors")
    assert overview["streams"]["windows"]["prefix"] == "windows"


def test_scenarios(client: TestClient, world: World) -> None:
    put = client.put("/api/scenarios", json={"scenarios": ["raw", "notification"], "by": "bo"},
                     headers=AUTH)
    assert put.status_code == 200 and put.json()["active"] == ["raw", "notification"]
    assert get(client, "/api/scenarios")["set_by"] == "bo"
    assert get(client, "/api/scenarios/history")["items"][0]["set_by"] == "bo"
    runs = get(client, "/api/scenarios/executions")["items"]
    assert runs[0]["run_id"] == world.sensor.run_id and runs[0]["status"] == "ok"
    stats = get(client, "/api/scenarios/stats")
    assert stats["totals"]["processed"] == world.sensor.counts["processed"]
    bad = client.put("/api/scenarios", json={"scenarios": ["nope"], "by": "bo"}, headers=AUTH)
    assert bad.status_code == 400 and "scenario_unknown" in bad.text


def test_every_page_renders(client: TestClient, world: World) -> None:
    event = get(client, "/api/events", limit=1)["items"][0]["id"]
    person = get(client, "/api/persons", limit=1)["items"][0]["id"]
    device = get(client, "/api/devices", limit=1)["items"][0]["id"]
    paths = ["/", "/timeline", "/timeline?type=call&q=x&start=2025-01-01", f"/events/{event}",
             "/runs", f"/runs/{world.evidence_run_id}", f"/runs/{world.sensor.run_id}",
             "/persons", f"/persons/{person}", "/devices", f"/devices/{device}",
             "/sensors/raw", "/sensors/schematized", "/sensors/errors", "/sensors/windows",
             "/sensors/windows?metric=voltage&start=last:1", "/sensors/anomalies",
             "/sensors/late", "/scenarios", "/docs"]
    for path in paths:
        r = client.get(path, headers={**AUTH, "Accept": "text/html"})
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        assert "<main>" in r.text
    assert client.get("/sensors", headers=AUTH, follow_redirects=False).status_code == 307
    assert client.get("/sensors/nope", headers=AUTH).status_code == 404
    assert "<svg" in client.get("/timeline", headers=AUTH).text
    assert client.get("/sensors/windows", headers=AUTH).text.count('class="chart band"') >= 1


def test_token_is_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first = resolve_token(tmp_path)
    assert first.generated and first.path is not None
    assert oct(first.path.stat().st_mode & 0o777) == "0o600"
    again = resolve_token(tmp_path)
    assert not again.generated and again.value == first.value
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-123")
    assert resolve_token(tmp_path).value == "from-the-environment-123"
    assert "from-the" not in repr(resolve_token(tmp_path))


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    cfg = SensorPipelineConfig(data_dir=str(tmp_path / "data"))
    app = create_app(WebSettings(db_url=f"sqlite:///{tmp_path / 'c.db'}", pipeline=cfg,
                                 token=TOKEN))
    with TestClient(app) as c:
        r = c.options("/api/events", headers={"Origin": "http://other.test",
                                              "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers
        empty = c.get("/api/events", headers=AUTH).json()
        assert empty["items"] == [] and empty["next_cursor"] is None
        assert c.get("/api/sensors/windows", headers=AUTH).json()["total"] == 0
        assert c.get("/sensors/windows", headers=AUTH).status_code == 200
        engine = schema.make_engine(f"sqlite:///{tmp_path / 'c.db'}")
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(schema.events)).scalar() == 0
        engine.dispose()
    app.state.ctx.engine.dispose()
