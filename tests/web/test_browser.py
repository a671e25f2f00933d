"""The pages in a real browser (Debian's chromium via Playwright) against a real uvicorn server:
log in, open every page, filter the timeline, open an event, merge and unmerge two persons,
switch a scenario, view a windowed chart. Screenshots go to the test's folder and, when
$CHRONO_SCREENSHOTS names a folder, there too."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from tests.db.test_identity_db import person_of
from tests.web.conftest import TOKEN, World, build_world

from chrono.db import schema
from chrono.web import create_app

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(autouse=True, scope="module")
def _chromium() -> None:
    """Debian's chromium (scripts/install-system-deps.sh installs it); missing fails under
    CI=true and skips elsewhere."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (CI installs Debian's chromium)")
        pytest.skip(f"no {CHROMIUM}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    root = tmp_path_factory.mktemp("browser")
    world = build_world(root, f"sqlite:///{root / 'chrono.db'}")
    app = create_app(world.settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", world
    srv.should_exit = True
    thread.join(timeout=10)
    app.state.ctx.engine.dispose()


def test_pages_in_a_browser(server: tuple[str, World], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, world = server
    extra = os.environ.get("CHRONO_SCREENSHOTS")

    def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            # Log in: any page asks for the token first, then shows itself.
            page.goto(f"{base}/timeline")
            shot(page, "login")
            page.fill("input[name=token]", "wrong-token-00000000")
            page.click("button[type=submit]")
            expect(page.get_by_role("alert")).to_contain_text("not valid")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/timeline")
            expect(page.locator("svg.chart")).to_be_visible()
            shot(page, "timeline")

            # Filter the timeline, then open an event.
            page.select_option("select[name=type]", "email")
            page.fill("input[name=q]", "budget")
            page.click("#filters button[type=submit]")
            rows = page.locator("#events tr[data-href]")
            expect(rows).to_have_count(2)
            for text in rows.all_inner_texts():
                assert "email" in text and "Budget review" in text
            shot(page, "timeline-filtered")
            rows.first.locator("a").first.click()
            expect(page.locator("h2", has_text="Provenance")).to_be_visible()
            expect(page.locator("#participants")).to_contain_text("from")
            expect(page.locator("#duplicates tr")).to_have_count(2)  # header + one copy
            shot(page, "event")

            # Merge two persons, then unmerge the result.
            engine = schema.make_engine(world.db_url)
            a = person_of(engine, "email", "chris.lee@acme.test")
            b = person_of(engine, "email", "clee2@acme.test")
            page.goto(f"{base}/persons?q=Chris")
            page.check(f"input[name=ids][value='{a}']")
            page.check(f"input[name=ids][value='{b}']")
            page.fill("#merge-form input[name=by]", "analyst")
            shot(page, "persons")
            page.click("#merge-form button[type=submit]")
            expect(page.get_by_role("status")).to_contain_text("merge")
            merged = person_of(engine, "email", "chris.lee@acme.test")
            assert merged == person_of(engine, "email", "clee2@acme.test")
            page.goto(f"{base}/persons/{merged}")
            expect(page.locator("#identifiers")).to_contain_text("clee2@acme.test")
            expect(page.locator("#audit")).to_contain_text("analyst")
            shot(page, "person")
            page.fill("#unmerge-form input[name=by]", "analyst")
            page.click("#unmerge-form button[type=submit]")
            expect(page.get_by_role("status")).to_contain_text("unmerge")
            assert person_of(engine, "email", "chris.lee@acme.test") != person_of(
                engine, "email", "clee2@acme.test")
            engine.dispose()

            # Switch a scenario.
            page.goto(f"{base}/scenarios")
            page.uncheck("input[name=scenarios][value=notification]")
            page.fill("#scenario-form input[name=by]", "night-shift")
            page.click("#scenario-form button[type=submit]")
            expect(page.get_by_role("status")).to_contain_text("recorded")
            expect(page.locator("#active")).not_to_contain_text("notification")
            expect(page.locator("#history")).to_contain_text("night-shift")
            shot(page, "scenarios")

            # The windowed chart: switch the metric, one chart per sensor.
            page.goto(f"{base}/sensors/windows")
            charts = page.locator("#charts svg.band")
            expect(charts).to_have_count(4)
            page.select_option("select[name=metric]", "humidity")
            expect(page).to_have_url(f"{base}/sensors/windows?metric=humidity&sensor=&start=")
            expect(charts.first).to_contain_text("humidity")
            assert charts.first.locator("polyline.mean").count() == 1
            assert charts.first.locator("polygon.range").count() == 1
            shot(page, "sensors-windows")
            page.select_option("select[name=sensor]", index=1)
            expect(charts).to_have_count(1)

            # Every other page opens.
            for name, path, marker in [
                ("overview", "/", "Active scenarios"), ("runs", "/runs", "Evidence runs"),
                ("run", f"/runs/{world.evidence_run_id}", "Files"),
                ("sensor-run", f"/runs/{world.sensor.run_id}", "Destinations"),
                ("devices", "/devices", "Devices"), ("sensors-raw", "/sensors/raw", "id"),
                ("sensors-schematized", "/sensors/schematized", "id"),
                ("sensors-errors", "/sensors/errors", "duplicate_reading"),
                ("sensors-anomalies", "/sensors/anomalies", "Notifications"),
                ("sensors-late", "/sensors/late", "window start"), ("docs", "/docs", "/api/"),
            ]:
                page.goto(base + path)
                expect(page.locator("main")).to_contain_text(marker)
                shot(page, name)
            page.goto(f"{base}/runs/{world.evidence_run_id}")
            page.select_option("select[name=outcome]", "failed")
            expect(page.locator("#files")).to_contain_text("blob.bin")
            expect(page.locator("#files")).not_to_contain_text("calls.csv")
            page.goto(f"{base}/devices")
            page.locator("#devices a").first.click()
            expect(page.locator("h2", has_text="Identifiers")).to_be_visible()
            shot(page, "device")
            page.click("header button")  # log out
            expect(page.locator("input[name=token]")).to_be_visible()
            page.goto(f"{base}/persons")
            expect(page.locator("input[name=token]")).to_be_visible()
        finally:
            browser.close()
