"""A real Chromium for the workspace tests: one browser per test session, the app on a free port.

Debian's chromium and chromedriver (installed by .ci/run); Selenium is told
where both are, so Selenium Manager never downloads anything. Per-agency hosts
(``kemenhub.lapor.test``) reach the test server through Chromium's
``--host-resolver-rules``. The phone width is CDP's device-metrics override
(headless Chromium ignores window sizes below about 500 px).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import BaseWSGIServer, make_server

from sms_gateway.config import PROJECT_ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
PHONE = {"width": 360, "height": 800, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = (1280, 900)


def start_chromium() -> WebDriver:
    """Headless Chromium as root in CI; skipped (failed in CI) when it is not installed."""
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        message = f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--lang=id",
                "--host-resolver-rules=MAP *.lapor.test 127.0.0.1, MAP lapor.test 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})  # console errors, CSP refusals
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class LiveServer:
    """The app under test in a thread of this process, so it shares the test's database."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.app(environ, start_response)

    def url(self, host: str, path: str = "/") -> str:
        """``http://<host>:<port><path>``."""
        return f"http://{host}:{self.port}{path}"

    def start(self, app: Any) -> LiveServer:
        self.app = app
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Page:
    """Selenium with the few moves the tests repeat."""

    def __init__(self, driver: WebDriver, live: LiveServer) -> None:
        self.driver = driver
        self.live = live

    def open(self, host: str, path: str = "/") -> Page:
        self.driver.get(self.live.url(host, path))
        return self

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(css)).select_by_value(value)

    def submit(self, css: str) -> None:
        """Click a submit button and wait for the next page."""
        # The old document carries a mark; the next one (at the end of a POST's redirect) does not.
        # Polled by script, not by Selenium's staleness check: mid-navigation chromedriver may answer
        # that with "Node … does not belong to the document" rather than a stale-element error.
        mark = secrets.token_hex(8)
        self.driver.execute_script("document.documentElement.dataset.left = arguments[0]", mark)
        self.find(css).click()
        WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,)).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && document.documentElement.dataset.left !== arguments[0]",
            mark))

    def follow(self, css: str) -> None:
        """Click a link and wait for the page it opens."""
        self.submit(css)

    def login(self, host: str, email: str, password: str) -> None:
        self.open(host, "/login")
        self.fill("#email", email)
        self.fill("#password", password)
        self.submit("form.stack button[type=submit]")

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Wait for a condition on elements that htmx or a reload may replace while it is read."""
        WebDriverWait(self.driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                      ).until(lambda d: condition())

    def wait_for(self, css: str, timeout: float = 10) -> Any:
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    # ----------------------------------------------------------------- checks of a whole page

    def phone(self, on: bool) -> None:
        if on:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        else:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: no horizontal scroll)."""
        return int(self.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"))

    def axe_violations(self) -> list[dict[str, Any]]:
        """Serious and critical accessibility violations found by axe-core."""
        from axe_selenium_python import Axe

        axe = Axe(self.driver)
        axe.inject()
        # The axe-core that axe-selenium-python bundles is 3.1; its "checkboxgroup"
        # rule (same-name checkboxes inside one fieldset) left axe-core in 4.0 as
        # not a WCAG requirement, and the inbox's row checkboxes live in a table.
        results = axe.run(options='{"rules": {"checkboxgroup": {"enabled": false}}}')
        return [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]

    def screenshot(self, path: Path) -> None:
        """The whole page, not only the viewport."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        width = max(metrics["cssContentSize"]["width"], self.driver.execute_script("return window.innerWidth"))
        height = min(metrics["cssContentSize"]["height"], 4000)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    """One browser for the whole session (start-up costs about a second)."""
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium: WebDriver, live: LiveServer) -> Iterator[Page]:
    """The shared browser with no cookies and the desktop size."""
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    yield Page(chromium, live)
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})


@pytest.fixture
def live(env: dict[str, str], settings: Any) -> Iterator[LiveServer]:
    """The real app, one host per agency under lapor.test, served on a free port."""
    from sms_gateway.config import Settings, set_settings
    from sms_gateway.web import create_app

    server = LiveServer()
    served = Settings({**env, "WORKSPACE_HOST_SUFFIX": "lapor.test",
                       "PUBLIC_BASE_URL": f"http://lapor.test:{server.port}"})
    app = create_app(served)
    server.start(app)
    yield server
    server.stop()
    set_settings(settings)


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/screenshots when SAVE_SCREENSHOTS=1 (`make screenshots`), else the test's temporary folder."""
    return SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path


def check_page(page: Page, name: str, folder: Path, problems: list[str],
               prepare: Callable[[], None] | None = None) -> None:
    """Desktop and 360-px phone: no horizontal scroll on the phone, no serious axe violation, screenshots.
    ``prepare`` runs after each reload (to bring the page back to the state worth looking at)."""
    for width in ("desktop", "phone"):
        page.phone(width == "phone")
        page.driver.refresh()
        page.wait_for("body")
        if prepare is not None:
            prepare()
        if width == "phone" and page.overflow() > 0:
            problems.append(f"{name}: {page.overflow()} px of horizontal scroll at 360 px")
        for violation in page.axe_violations():
            targets = [n["target"] for n in violation["nodes"]][:3]
            problems.append(f"{name} ({width}): {violation['impact']} {violation['id']}: {violation['help']} "
                            f"{json.dumps(targets)}")
        page.screenshot(folder / f"{name}-{width}.png")
    page.phone(False)
