"""The fleet page in a real headless Chromium, with data from a simulated fleet: scripts/simulate_fleet.py ->
mosquitto -> ingest -> PostgreSQL -> `edgesift fleet serve` (in-process uvicorn)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from mqtt_broker import free_port
from uplink_support import IngestThread, wait_for

pytestmark = pytest.mark.slow


def _chrome():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[fleet]'; scripts/setup.sh does it)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Chromium / chromedriver not found (apt-get install chromium chromium-driver; scripts/setup.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(driver))
    except Exception as exc:  # a browser that cannot start is an environment problem, named in the skip
        pytest.skip(f"headless Chromium did not start: {str(exc)[:300]}")


class Server:
    """`edgesift fleet serve`'s app on uvicorn in a thread."""

    def __init__(self, db: str, store: Path, token: str | None = None) -> None:
        import uvicorn

        from agent.fleet.queries import FleetReader
        from agent.fleet.web import make_app

        self.port = free_port()
        self.reader = FleetReader(db, store)
        config = uvicorn.Config(make_app(self.reader, token), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the fleet page server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.reader.close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, postgres):
    """A simulated fleet streamed into a PostgreSQL index (module-scoped: the browser tests read it)."""
    from mqtt_broker import Broker, find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    tmp = tmp_path_factory.mktemp("fleet")
    db = postgres.create_database("fleet_page")
    with Broker(tmp / "broker") as broker, IngestThread(broker.url, tmp / "store", db=db) as ingest:
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "simulate_fleet.py"), "--broker", broker.url, "--vehicles", "3",
             "--duration", "16", "--push-config", "--stats-s", "1", "--work", str(tmp / "vehicles")],
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        acked = sum(v.get("acked", 0) for v in summary["per_vehicle"])  # the offline one's are in too
        wait_for(lambda: ingest.stat("frames") >= acked, 120, f"the ingest to catch up with {acked} frames")
        wait_for(lambda: ingest.ingest.vehicles["car-03"].status == "offline", 30,
                 f"car-03's offline status (its own or its Last Will) at the ingest: {summary['per_vehicle']}")
        wait_for(lambda: ingest.stat("alert_messages") >= 2, 10,
                 f"the raised and cleared alert at the ingest: {summary} {ingest.ingest.stats()}")
        time.sleep(0.5)
    return {"db": db, "store": tmp / "store", "summary": summary}


def test_fleet_pages_render_links_work_and_match_the_api(fleet) -> None:
    from selenium.webdriver.common.by import By

    chrome = _chrome()
    try:
        with Server(fleet["db"], fleet["store"]) as server:
            api = json.loads(_get(server.url("/api/fleet"))[1])
            assert {v["vehicle"] for v in api} == {"car-01", "car-02", "car-03"}
            chrome.get(server.url("/"))
            assert chrome.title.startswith("Fleet")
            for vehicle in api:  # what the page shows is what the API says
                row = chrome.find_element(By.CSS_SELECTOR, f'tr[data-vehicle="{vehicle["vehicle"]}"]')
                cell = {td.get_attribute("data-field"): td.text for td in row.find_elements(By.TAG_NAME, "td")}
                assert cell["online"] == vehicle["online"]
                assert int(cell["frames_last_hour"]) == vehicle["frames_last_hour"] > 0
                assert float(cell["mb_last_hour"]) == pytest.approx(vehicle["mb_last_hour"], abs=0.001)
                assert int(cell["open_alerts"]) == vehicle["open_alerts"]
                assert cell["config"].startswith(f"v{vehicle['config_version']}")
            assert next(v for v in api if v["vehicle"] == "car-03")["online"] == "offline"  # went offline
            car1 = next(v for v in api if v["vehicle"] == "car-01")
            pushes = fleet["summary"]["pushes"]
            assert (car1["config_version"], car1["config_status"]) == (2, "rejected"), pushes  # v2 runs, v3 refused

            chrome.find_element(By.LINK_TEXT, "car-02").click()  # the vehicle with the failing camera
            assert chrome.current_url == server.url("/vehicles/car-02")
            alerts = chrome.find_element(By.ID, "vehicle-alerts").text
            assert "noisy" in alerts and "cleared" in alerts
            images = chrome.find_elements(By.CSS_SELECTOR, ".thumbs img")
            assert images and all(chrome.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                                        img) == 240 for img in images)
            vehicle_api = json.loads(_get(server.url("/api/vehicles/car-02"))[1])
            for sensor, mix in vehicle_api["sensors"].items():
                row = chrome.find_element(By.CSS_SELECTOR, f'#sensors tr[data-sensor="{sensor}"]')
                assert int(row.find_element(By.CSS_SELECTOR, '[data-field="frames"]').text) == mix["frames"]

            chrome.get(server.url("/vehicles/car-01"))
            history = chrome.find_element(By.ID, "config-history").text
            assert "accepted" in history and "rejected" in history

            chrome.get(server.url("/alerts"))
            rows = chrome.find_elements(By.CSS_SELECTOR, "#alerts tr[data-vehicle]")
            assert len(rows) == len(json.loads(_get(server.url("/api/alerts"))[1])) >= 1
            chrome.get(server.url("/targets"))
            assert chrome.find_element(By.TAG_NAME, "h1").text == "Targets"

            links = set()
            for path in ("/", "/alerts", "/targets", "/vehicles/car-01", "/vehicles/car-02"):
                chrome.get(server.url(path))
                links |= {a.get_attribute("href").split("#")[0] for a in chrome.find_elements(By.TAG_NAME, "a")}
            broken = [link for link in sorted(links) if _get(link)[0] != 200]
            assert not broken and len(links) >= 8
            severe = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []  # no console errors on any page
            assert _get(server.url("/vehicles/nope"))[0] == 404
    finally:
        chrome.quit()


def test_the_page_needs_its_token_and_refuses_to_bind_wide_without_one(fleet) -> None:
    from agent.errors import ConfigError
    from agent.fleet.web import serve

    token = "s3cret-token-of-the-fleet"
    with Server(fleet["db"], fleet["store"], token=token) as server:
        assert _get(server.url("/api/fleet"))[0] == 401
        assert _get(server.url("/"), {"Authorization": "Bearer wrong-token-xxxxxxxx"})[0] == 401
        assert _get(server.url("/api/fleet"), {"Authorization": f"Bearer {token}"})[0] == 200
        basic = base64.b64encode(f"ops:{token}".encode()).decode()
        assert _get(server.url("/"), {"Authorization": f"Basic {basic}"})[0] == 200
    with pytest.raises(ConfigError, match="token"):
        serve(fleet["db"], fleet["store"], "0.0.0.0", free_port(), None)
