"""The HTML report in a real browser: headless Chromium (Debian's package) via selenium.

One browser session for the module. Skipped, saying why, only where no
chromium/chromedriver is installed (``.ci/run`` installs them).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from bench.browser import chromium, console_errors, missing_browser, wait_for_plots

from taskclf.model_registry import read_bundle, write_active_atomic
from taskclf.report import write_report
from taskclf.samples import LABELS, write_bundle

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = pytest.mark.skipif(
    missing_browser() is not None, reason=f"no browser for the report: {missing_browser()}"
)

ALERT_NAME = "<img src=x onerror=alert(1)>"
SCRIPT_NAME = "<script>alert(2)<\\script>"
NOTE = "</script><script>alert(3)</script>"


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with chromium() as session:
        yield session


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report ``taskclf demo`` writes, made by the real command."""
    workspace = tmp_path_factory.mktemp("demo") / "ws"
    taskclf = Path(sys.executable).with_name("taskclf")
    subprocess.run(
        [str(taskclf), "demo", "--dir", str(workspace), "--json"],
        check=True,
        capture_output=True,
    )
    return workspace / "report.html"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry whose names, labels, schema and history notes all carry markup."""
    models_dir = tmp_path_factory.mktemp("hostile") / "models"
    write_bundle(models_dir / ALERT_NAME, accuracy=0.9, seed=1)
    write_bundle(models_dir / SCRIPT_NAME, accuracy=0.8, seed=2)
    write_bundle(
        models_dir / "labels",
        accuracy=0.85,
        seed=3,
        label_set=["<svg onload=alert(5)>", *LABELS[1:]],
        schema_hash="000000000000",
        extra_metadata={"schema_version": "<b>v9</b></script><script>alert(4)</script>"},
    )
    write_bundle(models_dir / "bad-date", seed=5, created_at="<img src=x onerror=alert(6)>")
    for name, note in ((SCRIPT_NAME, "first"), (ALERT_NAME, NOTE)):
        bundle = read_bundle(models_dir / name)
        assert bundle is not None
        write_active_atomic(models_dir, bundle, reason=note)
    return write_report(
        models_dir, models_dir.parent / "report.html", compare=(ALERT_NAME, "labels")
    )


@pytest.fixture(scope="module")
def webgl_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry whose time chart is drawn with WebGL, as at 10,000 bundles."""
    import taskclf.report.render as render

    models_dir = tmp_path_factory.mktemp("webgl") / "models"
    for i in range(12):
        write_bundle(models_dir / f"run-{i:02d}", accuracy=0.6 + i / 50, seed=i)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "WEBGL_POINT_THRESHOLD", 10)
        return write_report(models_dir, models_dir.parent / "report.html")


def _load(driver: WebDriver, page: Path) -> int:
    console_errors(driver)  # drop what earlier pages logged
    driver.get(page.as_uri())
    return wait_for_plots(driver)


_CHART_STATE = """
var figures = JSON.parse(document.getElementById("report-data").textContent).figures;
return figures.map(function (figure) {
  var element = document.getElementById(figure.id);
  var points = (element.data || []).reduce(function (sum, trace) {
    return sum + ((trace.z || trace.y || []).length);
  }, 0);
  return {
    id: figure.id,
    svgs: element.querySelectorAll(".main-svg").length,
    traces: element.querySelectorAll("g.trace, g.hm, image").length,
    points: points
  };
});
"""


def _charts(driver: WebDriver) -> list[dict[str, Any]]:
    charts: list[dict[str, Any]] = driver.execute_script(_CHART_STATE)
    return charts


def test_demo_report_draws_every_chart_without_errors(driver: WebDriver, demo_report: Path) -> None:
    drawn = _load(driver, demo_report)

    charts = _charts(driver)
    assert [c["id"] for c in charts] == [
        "chart-time",
        "chart-matrix-0",
        "chart-matrix-1",
        "chart-matrix-diff",
        "chart-scores",
    ]
    assert drawn == len(charts)
    for chart in charts:
        assert chart["svgs"] >= 1 and chart["traces"] >= 1 and chart["points"] > 0, chart
    assert console_errors(driver) == []
    active = driver.find_element("id", "active-bundle").text
    assert active == "2026-02-12_110000_run-0040"
    assert "healthy" in driver.find_element("id", "pointer-health").text


def _ranking(driver: WebDriver, column: int) -> list[str]:
    rows = driver.find_elements("css selector", "#ranking tbody tr")
    return [
        row.find_elements("tag name", "td")[column].get_attribute("data-value") or ""
        for row in rows
        if row.is_displayed()
    ]


def test_ranking_table_sorts_and_filters(driver: WebDriver, demo_report: Path) -> None:
    _load(driver, demo_report)
    header = driver.find_elements("css selector", "#ranking thead th")[6]  # min precision
    assert header.text == "min precision"

    header.click()
    descending = _ranking(driver, 6)
    header.click()
    ascending = _ranking(driver, 6)

    numbers = [float(v) for v in descending if v]
    assert numbers == sorted(numbers, reverse=True) and descending[-1] == ""  # nulls last
    assert [float(v) for v in ascending if v] == sorted(numbers) and ascending[-1] == ""

    driver.find_element("id", "ranking-filter").send_keys("incompatible")
    assert _ranking(driver, 1) == ["2026-02-17_170000_run-0042"]
    assert driver.find_element("id", "ranking-count").text == "1 of 7 rows"


def test_markup_from_disk_renders_as_text_and_runs_nothing(
    driver: WebDriver, hostile_report: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    drawn = _load(driver, hostile_report)

    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert
    assert drawn == len(_charts(driver)) == 4  # label sets differ: no difference heatmap
    assert driver.find_element("id", "active-bundle").text == ALERT_NAME
    page_text = driver.find_element("tag name", "body").text
    for text in (ALERT_NAME, SCRIPT_NAME, NOTE, "<b>v9</b>"):
        assert text in page_text
    count = "return document.querySelectorAll(arguments[0]).length"
    assert driver.execute_script(count, "img, svg[onload], b") == 0
    assert driver.execute_script(count, "script") == 3  # the page's own
    # The label is a heatmap axis tick, drawn as SVG text.
    ticks = driver.execute_script(
        "return Array.from(document.querySelectorAll('#chart-matrix-1 .ytick text'))"
        ".map(function (t) { return t.textContent; })"
    )
    assert "<svg onload=alert(5)>" in ticks
    assert console_errors(driver) == []


def test_webgl_time_chart_draws_without_errors(driver: WebDriver, webgl_report: Path) -> None:
    drawn = _load(driver, webgl_report)

    state = driver.execute_script(
        "var chart = document.getElementById('chart-time');"
        "return {types: chart._fullData.map(function (t) { return t.type; }),"
        " canvases: chart.querySelectorAll('canvas').length};"
    )
    assert drawn == 2  # no pointer: the time chart and the challenger's matrix
    assert "scattergl" in state["types"] and state["canvases"] > 0
    assert console_errors(driver) == []
