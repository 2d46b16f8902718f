"""Headless Chromium for the report's browser tests, benchmark and screenshots.

Debian's ``chromium`` and ``chromium-driver`` packages, driven by
selenium. The driver path is given explicitly so that selenium-manager
never tries to download a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebGL (the time chart's scattergl at scale) runs on SwiftShader without a GPU;
    # opting in explicitly keeps Chromium's deprecation warning out of the console.
    "--enable-unsafe-swiftshader",
)


def missing_browser() -> str | None:
    """Why the browser cannot run here, or ``None`` when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return (
                f"{path} not found: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)"
            )
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium session with a fresh profile, its console log kept."""
    from selenium import webdriver

    profile = tempfile.mkdtemp(prefix="taskclf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_plots(driver: WebDriver, timeout_s: float = 60.0) -> int:
    """Wait until the report's script says every chart is drawn; return how many."""
    from selenium.webdriver.support.ui import WebDriverWait

    def drawn(d: WebDriver) -> str | None:
        value = d.execute_script("return document.body.getAttribute('data-plots-drawn')")
        return value if isinstance(value, str) else None

    value = WebDriverWait(driver, timeout_s).until(drawn)
    return int(value or 0)


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The console entries logged at level SEVERE since the last call (the log is drained)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry["level"] == "SEVERE"]
