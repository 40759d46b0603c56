"""The API reference page: served with its vendored assets, rendered in a real browser, nothing from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from sms_gateway.agencies.api import openapi_document
from sms_gateway.agencies.apidocs import STATIC_DIR
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from tests.conftest import REDIS_URL

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "api-docs.png"
ASSET = re.compile(r'(?:src|href)="(/api/v1/docs/assets/[^"?]+)\?v=([0-9a-f]+)"')
YEAR = 365 * 24 * 3600


@pytest.fixture(scope="module")
def docs_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real app; the page needs neither the database nor Redis, so one backend is enough."""
    from sms_gateway.web import create_app

    tmp = tmp_path_factory.mktemp("api-docs")
    app = create_app(Settings({"DATABASE_URL": f"sqlite:///{tmp}/gateway.sqlite3", "REDIS_URL": REDIS_URL,
                               "PREFIXES_FILE": str(PROJECT_ROOT / "prefixes.yaml")}))
    yield app
    set_settings(None)


def operations() -> set[tuple[str, str]]:
    """(METHOD, path or webhook name) of every operation the OpenAPI document describes."""
    document = openapi_document()
    return {(method.upper(), path) for path, item in (*document["paths"].items(), *document["webhooks"].items())
            for method in item if method in ("get", "post", "put", "patch", "delete")}


# --------------------------------------------------------------------------- served as it should be

def test_the_page_links_its_assets_by_fingerprint_and_forbids_other_origins(docs_app: Any) -> None:
    client = docs_app.test_client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert page.headers["Cache-Control"] == "no-cache"  # revalidated: a release shows its new assets at once
    policy = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src"):
        assert policy[directive] == "'self'", directive
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert not re.search(r"https?:|\*|unsafe", page.headers["Content-Security-Policy"])
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page.text)

    linked = dict(ASSET.findall(page.text))
    assert set(linked) == {"/api/v1/docs/assets/swagger-ui/swagger-ui-bundle.js",
                           "/api/v1/docs/assets/swagger-ui/swagger-ui.css",
                           "/api/v1/docs/assets/api-docs.js", "/api/v1/docs/assets/api-docs.css"}
    for path, fingerprint in linked.items():
        asset = client.get(f"{path}?v={fingerprint}")
        assert asset.status_code == 200, path
        on_disk = (STATIC_DIR / path.removeprefix("/api/v1/docs/assets/")).read_bytes()
        assert asset.data == on_disk
        assert fingerprint == hashlib.sha256(on_disk).hexdigest()[:16]
        expected = "text/javascript" if path.endswith(".js") else "text/css"
        assert asset.mimetype == expected, path
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        cache = asset.cache_control
        assert cache.public and cache.immutable and cache.max_age == YEAR, asset.headers["Cache-Control"]
        assert client.get(f"{path}?v={fingerprint}", headers={"If-None-Match": asset.headers["ETag"]}
                          ).status_code == 304


def test_an_asset_asked_for_by_an_old_fingerprint_is_served_but_not_kept(docs_app: Any) -> None:
    client = docs_app.test_client()
    for query in ("?v=0000000000000000", ""):
        asset = client.get(f"/api/v1/docs/assets/api-docs.js{query}")
        assert asset.status_code == 200
        assert asset.headers["Cache-Control"] == "no-cache"


def test_unknown_assets_and_paths_outside_the_folder_are_404(docs_app: Any) -> None:
    client = docs_app.test_client()
    for path in ("swagger-ui/nope.js", "../api.py", "..%2fapi.py", "/etc/passwd", "swagger-ui", "api-docs.js/",
                 "a%00b", "x" * 300):
        answer = client.get(f"/api/v1/docs/assets/{path}", follow_redirects=True)  # "//etc": one slash
        assert answer.status_code == 404, path
        assert answer.json["status"] == 404  # the API's JSON error, like any /api/v1 path


def test_the_vendored_swagger_ui_is_as_the_registry_shipped_it() -> None:
    """Changes to the page go in api-docs.css/js; the vendored files change only with `make swagger-ui`."""
    folder = STATIC_DIR / "swagger-ui"
    sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {p.name for p in folder.iterdir()} - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    version = json.loads((folder / "package.json").read_text())["version"]
    assert f"SWAGGER_UI ?= {version}" in (PROJECT_ROOT / "Makefile").read_text()
    assert f"Swagger UI {version}" in (PROJECT_ROOT / "README.md").read_text()


# --------------------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def live_url(docs_app: Any) -> Iterator[str]:
    """The app served from a thread on a free port."""
    server = make_server("127.0.0.1", 0, docs_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Selenium (pointed at both, so nothing is downloaded)."""
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        message = f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    # Every Content-Security-Policy refusal, recorded before the page's own scripts run.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__refused = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__refused.push(e.violatedDirective + ' ' + e.blockedURI));")})
    yield driver
    driver.quit()


def _screenshot(driver: Any, path: Path, height: int, top: float = 0) -> None:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": top, "width": driver.execute_script("return window.innerWidth"),
                 "height": height, "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.slow
def test_the_page_renders_every_operation_with_nothing_from_another_host(
        browser: Any, live_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    expected = operations()
    browser.get(f"{live_url}/api/v1/docs")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected))
    rendered = {tuple(op) for op in browser.execute_script(
        "return [...document.querySelectorAll('.opblock')].map(b => ["
        " b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').dataset.path])")}
    assert rendered == expected
    assert "LAPOR! 1708 SMS gateway" in browser.find_element(By.CSS_SELECTOR, ".info .title").text

    # Open one operation: its parameters come from the document, rendered by the page's scripts.
    browser.find_element(By.CSS_SELECTOR, "#operations-reports-listReports .opblock-summary-control").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#operations-reports-listReports tr[data-param-name]"))
    parameters = {row.get_attribute("data-param-name") for row in browser.find_elements(
        By.CSS_SELECTOR, "#operations-reports-listReports tr[data-param-name]")}
    documented = {p["name"] for p in openapi_document()["paths"]["/api/v1/reports"]["get"]["parameters"]}
    assert parameters == documented

    requested = browser.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => e.name)")
    paths = {re.sub(r"\?.*", "", url.removeprefix(live_url)) for url in requested}
    assert {"/api/v1/docs", "/api/v1/openapi.json", "/api/v1/docs/assets/swagger-ui/swagger-ui-bundle.js",
            "/api/v1/docs/assets/swagger-ui/swagger-ui.css"} <= paths
    assert [url for url in requested if not url.startswith(live_url + "/")] == []
    assert browser.execute_script("return window.__refused") == []
    assert [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    _screenshot(browser, SCREENSHOT if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path / "api-docs.png",
                height=1400)


@pytest.mark.slow
def test_the_page_fits_a_phone(browser: Any, live_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 360, "height": 800, "deviceScaleFactor": 2, "mobile": True})
    try:
        browser.get(f"{live_url}/api/v1/docs")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(operations()))
        # An open operation, with its parameters and responses tables.
        browser.find_element(By.CSS_SELECTOR, "#operations-reports-getReport .opblock-summary-control").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#operations-reports-getReport .responses-table"))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        top = browser.execute_script("return document.querySelector('#operations-reports-getReport')"
                                     ".getBoundingClientRect().top + window.scrollY")
        _screenshot(browser, tmp_path / "api-docs-phone.png", height=1200, top=top - 100)
        assert overflow == 0, f"the page is {overflow} px wider than a 360 px phone: {tmp_path}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
