"""The dashboard in headless Chromium (Playwright driving /usr/bin/chromium; no browser download):
robots, versions, the success-rate plot, training runs, and a real click on Roll back."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import need
from tests.serving.serving_helpers import SIM_SPEC, Server, start_server, upload

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fleet_server(
    tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]
) -> Iterator[tuple[Server, str, str]]:
    """A server with two robots on v2 (rolled out after v1), episodes under both, a run in progress."""
    srv = start_server(tmp_path_factory.mktemp("dash"))
    with srv.client(srv.admin) as admin, srv.client(srv.operator) as op:
        v1, v2 = (upload(admin, artifacts[k]).json()["policy"]["version"] for k in ("v1", "v2"))
        for robot in ("arm-1", "arm-2"):
            op.post("/robots", json={"robot_id": robot, "spec": SIM_SPEC.to_json()})
        admin.post("/rollouts", json={"version": v1})
        admin.post("/rollouts", json={"version": v2})
        now = datetime.now(UTC)
        for i in range(12):  # minute i: 1 + 2i episodes, v1 for six minutes (about 1 in 2), then v2 (3 in 4)
            for j in range(1 + 2 * i):
                version, ok = (v1, (i + j) % 2 == 0) if i < 6 else (v2, (i + j) % 4 != 0)
                op.post(
                    "/episodes",
                    json={
                        "episode_id": f"ep-{i}-{j}",
                        "robot_id": "arm-1" if i % 2 else "arm-2",
                        "policy_version": version,
                        "task": "drawer-close",
                        "success": "true" if ok else "false",
                        "length": 50,
                        "ended_at": (now - timedelta(minutes=12 - i, seconds=-j)).isoformat(),
                    },
                )
        for robot in ("arm-1", "arm-2"):
            op.post(f"/robots/{robot}/heartbeat", json={"running_version": v2, "health": {"ok": True}})
        run = op.post("/runs", json={"task": "drawer-close"}).json()
        run_id = run.get("id") or run["run"]["id"]
        with srv.client(srv.trainer) as trainer:
            trainer.patch(f"/runs/{run_id}", json={"status": "running", "stage": "world_model", "progress": 0.4})
    # a cycle started with `flywheel train cycle` on the same data dir: the trainer mirrors it into the registry
    from trainer.service.progress import create_run, update_run
    from trainer.service.settings import ServiceSettings

    trainer = ServiceSettings(
        data_dir=srv.data_dir, registry_url=f"sqlite:///{srv.data_dir / 'registry' / 'registry.db'}"
    )
    create_run(trainer, "20261201-000000-c0ffee", {"task": "drawer-close"}, ["world_model"], "cli")
    agreement = "action-replay agreement over 64 imagined trajectories: outcome 0.81"  # the GRPO stage's check
    update_run(trainer, "20261201-000000-c0ffee", state="succeeded", outcome="no improvement",
               outcome_reason="GRPO made no update", results={"grpo": {"info": {"agreement": agreement}}})  # fmt: skip
    yield srv, v1, v2
    srv.stop()


def test_dashboard_shows_the_fleet_and_rolls_back_on_click(
    fleet_server: tuple[Server, str, str], tmp_path: Path
) -> None:
    need(shutil.which(CHROMIUM) is not None, "Chromium at /usr/bin/chromium (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    server, v1, v2 = fleet_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/dashboard")
            page.fill("#token", server.viewer)
            page.click("#save-token")
            page.wait_for_selector("body[data-loaded='1']")
            assert not page.is_visible("#rollback")  # a viewer sees no admin buttons

            page.fill("#token", server.admin)
            page.click("#save-token")
            page.wait_for_selector("body.is-admin #rollback")
            page.wait_for_function(
                "v => document.querySelector(\"#robots tr[data-robot='arm-1'] .running\")?.textContent === v", arg=v2
            )
            assert page.inner_text("#who") == "test-admin (admin)"
            # the page's first load had no token (401); signed in, no error is left on the page after two refreshes
            seen = int(page.evaluate("() => Number(document.body.dataset.refreshes)"))
            page.wait_for_function("n => Number(document.body.dataset.refreshes) >= n + 2", arg=seen)
            assert page.inner_text("#status") == "", page.inner_text("#status")
            assert "valid API token" not in page.inner_text("body")
            assert page.locator("#policies tbody tr").count() == 2
            # a judged candidate: at the deployment temperature first, the sampling temperature as a second figure
            judged = page.inner_text("#policies tbody")
            assert "at T=0 (deployed): sim 79% vs parent 71%, imagined 60% vs parent 55%" in judged
            assert "at T=1.3 (sampling): sim 95% vs parent 66%" in judged
            lines = page.locator("#plot polyline")
            assert sorted(lines.nth(i).get_attribute("data-version") or "" for i in range(lines.count())) == sorted(
                [v1, v2]
            )
            assert "running 2/2" in page.inner_text("#rollouts tbody")  # each robot's part in the rollout
            runs = page.inner_text("#runs tbody")
            assert "40%" in runs and "trainer (cli)" in runs and "no improvement: GRPO made no update" in runs
            assert "imagination vs the arm: action-replay agreement over 64 imagined trajectories" in runs
            with server.client(server.viewer) as viewer:
                series = viewer.get("/stats/success-rate", params={"bucket_s": 60}).json()
            for version in (v1, v2):  # each point's 95% interval: a whisker per point and a band per version
                drawn = page.evaluate(
                    """v => ({
                      whiskers: [...document.querySelectorAll(`#plot g.ci[data-version="${v}"] line:first-child`)]
                        .map(l => [+l.getAttribute("y1"), +l.getAttribute("y2")]),
                      band: document.querySelector(`#plot polygon.ci-band[data-version="${v}"]`)
                        ?.getAttribute("points").trim().split(/\\s+/).length,
                      titles: [...document.querySelectorAll("#plot circle title")].map(t => t.textContent)
                        .filter(t => t.startsWith(v)),
                    })""",
                    version,
                )
                points = series[version]
                assert len(drawn["whiskers"]) == len(points) > 1 and drawn["band"] == 2 * len(points)
                assert all(low > high for low, high in drawn["whiskers"])  # screen y: the low end is further down
                assert all(p["low"] < p["rate"] < p["high"] or p["rate"] in (0, 1) for p in points)
                assert len(drawn["titles"]) == len(points) and all("95% interval" in t for t in drawn["titles"])
            page.locator("#plot").screenshot(path=str(tmp_path / "plot.png"))

            page.click("#rollback")  # a real click on the admin's button
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('rolled back')")
            page.wait_for_function(
                "v => [...document.querySelectorAll('#robots tbody tr td:nth-child(3)')]"
                ".every(td => td.textContent === v)",
                arg=v1,
            )
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            page.click(f"button.rollout[data-version='{v2}']")  # and a rollout, all at once, by click
            page.wait_for_function(
                "v => [...document.querySelectorAll('#robots tbody tr td:nth-child(3)')]"
                ".every(td => td.textContent === v)",
                arg=v2,
            )
        finally:
            browser.close()
    with server.client(server.viewer) as viewer:
        assert {viewer.get(f"/robots/{r}/desired").json()["version"] for r in ("arm-1", "arm-2")} == {v2}
        # v1 was never run before v2 replaced it; v2 ran everywhere, was rolled back, and rolled out again
        assert [r["status"] for r in viewer.get("/rollouts").json()] == ["complete", "rolled_back", "superseded"]
        clicks = viewer.get("/audit", params={"action": ["rollback", "rollout"]}).json()[:2]
        assert [(e["action"], e["actor"]) for e in clicks] == [("rollout", "test-admin"), ("rollback", "test-admin")]
