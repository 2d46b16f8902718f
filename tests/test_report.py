"""``taskclf report``: the data step, the HTML it renders, and the command (no browser here).

The browser checks (charts drawn, no alert, sorting) are in ``test_report_browser.py``.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import BundleFactory
from taskclf.cli.main import app
from taskclf.model_registry import (
    BundleError,
    read_active,
    read_bundle,
    write_active_atomic,
)
from taskclf.report import build_report_data, render_report, write_report
from taskclf.report.data import INELIGIBLE_POINT_LIMIT, exclusion_kind, matrix_view
from taskclf.report.render import script_json
from taskclf.samples import LABELS

runner = CliRunner(env={"COLUMNS": None})
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_NOTE = "</script><script>alert(3)</script>"


def _activate(models_dir: Path, name: str, note: str | None = None) -> None:
    bundle = read_bundle(models_dir / name)
    assert bundle is not None
    write_active_atomic(models_dir, bundle, reason=note)


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Three eligible bundles (two activated in turn), one incompatible, one invalid."""
    make_bundle("run-1", accuracy=0.70, seed=1, created_at="2026-01-01T00:00:00+00:00")
    make_bundle("run-2", accuracy=0.80, seed=2, created_at="2026-01-02T00:00:00+02:00")
    make_bundle("run-3", accuracy=0.90, seed=3, created_at="2026-01-03T00:00:00")
    make_bundle("other-hash", accuracy=0.95, seed=4, schema_hash="0123456789ab")
    broken = make_bundle("broken", seed=5)
    (broken / "metrics.json").write_text("{", "utf-8")
    _activate(models_dir, "run-1", "first")
    _activate(models_dir, "run-2", "better")
    return models_dir


def test_overview_counts_and_health(registry: Path) -> None:
    data = build_report_data(registry, now=NOW)

    o = data.overview
    assert o.models_dir == str(registry)
    assert o.generated_at == "2026-03-01T12:00:00+00:00"
    assert o.active_model_id == "run-2"
    assert o.pointer_healthy is True and o.pointer_findings == []
    assert o.registry_healthy is False  # the broken bundle is a verify error
    assert (o.bundles, o.valid, o.eligible) == (5, 4, 3)
    assert o.excluded == {
        "incompatible: schema_hash mismatch": 1,
        "invalid: metrics.json parse error": 1,
    }
    assert any("no usable metrics.json" in m for m in data.missing)


def test_exclusion_kind_drops_per_bundle_detail() -> None:
    assert exclusion_kind("invalid: metrics.json parse error: EOF at 3") == (
        "invalid: metrics.json parse error"
    )
    assert exclusion_kind("incompatible: label_set mismatch") == "incompatible: label_set mismatch"


def test_time_points_tell_eligibility_schema_and_active_apart(registry: Path) -> None:
    data = build_report_data(registry, now=NOW)

    points = {p.model_id: p for p in data.points}
    assert set(points) == {"run-1", "run-2", "run-3", "other-hash"}  # broken has no metrics
    assert points["other-hash"].eligible is False and points["run-3"].eligible is True
    assert [p.model_id for p in data.points if p.active] == ["run-2"]
    assert points["run-1"].schema_version == "v1"
    # Offsets are converted to UTC; a naive created_at is UTC (REGISTRY.md §2).
    assert points["run-2"].created_at == "2026-01-01 22:00:00"
    assert points["run-3"].created_at == "2026-01-03 00:00:00"
    assert data.points_note is None


def test_production_steps_follow_history_and_reach_now(registry: Path) -> None:
    data = build_report_data(registry, now=NOW)

    steps = data.production
    assert [s.model_id for s in steps] == ["run-1", "run-2", "run-2"]
    assert [s.from_model_id for s in steps[:2]] == [None, "run-1"]
    assert [s.reason for s in steps] == ["first", "better", "(now)"]
    assert steps[-1].at == "2026-03-01 12:00:00"
    bundle = read_bundle(registry / "run-2")
    assert bundle is not None and bundle.metrics is not None
    assert steps[1].macro_f1 == bundle.metrics.macro_f1
    assert [(h.from_model_id, h.to_model_id, h.reason) for h in data.history] == [
        (None, "run-1", "first"),
        ("run-1", "run-2", "better"),
    ]


def test_ranking_is_train_list_order_with_schema_version(registry: Path) -> None:
    data = build_report_data(registry, now=NOW)

    ids = [r.row.model_id for r in data.ranking]
    assert ids == ["other-hash", "run-3", "run-2", "run-1", "broken"]
    assert [r.rank for r in data.ranking] == [1, 2, 3, 4, 5]
    assert data.ranking[-1].row.notes is not None
    assert data.ranking[-1].row.notes.startswith("invalid: metrics.json parse error")
    assert data.ranking[0].schema_version == "v1"
    assert data.ranking_note is None


def test_ranking_is_capped_but_keeps_the_active_row(
    models_dir: Path, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskclf.report.data as report_data

    monkeypatch.setattr(report_data, "RANKING_LIMIT", 2)
    for i in range(5):
        make_bundle(f"run-{i}", macro_f1=0.5 + i / 10, seed=i)
    _activate(models_dir, "run-0")

    data = build_report_data(models_dir, now=NOW)

    assert [(r.rank, r.row.model_id) for r in data.ranking] == [
        (1, "run-4"),
        (2, "run-3"),
        (5, "run-0"),
    ]
    assert data.ranking_note is not None and "top 2 of 5" in data.ranking_note


def test_ineligible_points_are_sampled_beyond_the_limit(
    models_dir: Path, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskclf.report.data as report_data

    monkeypatch.setattr(report_data, "INELIGIBLE_POINT_LIMIT", 3)
    for i in range(8):
        make_bundle(f"bad-{i}", seed=i, schema_hash="0123456789ab")
    for i in range(4):
        make_bundle(f"good-{i}", seed=10 + i)

    data = build_report_data(models_dir, now=NOW)

    assert sum(p.eligible for p in data.points) == 4  # every eligible bundle stays
    assert sum(not p.eligible for p in data.points) == 3
    assert data.points_note is not None and "3 of 8 ineligible" in data.points_note
    assert INELIGIBLE_POINT_LIMIT >= 1000


def test_matrices_default_to_active_and_best_challenger(registry: Path) -> None:
    data = build_report_data(registry, now=NOW)

    assert [(m.role, m.model_id) for m in data.matrices] == [
        ("active", "run-2"),
        ("best challenger", "run-3"),
    ]
    assert data.matrices_note is None


def test_compare_picks_the_two_given_bundles(registry: Path) -> None:
    data = build_report_data(registry, compare=("run-1", "other-hash"), now=NOW)

    assert [(m.role, m.model_id) for m in data.matrices] == [
        ("compared", "run-1"),
        ("compared", "other-hash"),
    ]


@pytest.mark.parametrize(
    ("model_id", "says"), [("nope", "no such bundle"), ("broken", "no usable metrics.json")]
)
def test_compare_refuses_unknown_or_metricless_bundles(
    registry: Path, model_id: str, says: str
) -> None:
    with pytest.raises(BundleError, match=says):
        build_report_data(registry, compare=("run-1", model_id), now=NOW)


def test_matrix_view_normalises_rows_and_scores_classes(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("m", seed=1)
    matrix = [[3, 1, 0], [0, 0, 0], [2, 0, 4]]
    metrics = {"macro_f1": 0.5, "weighted_f1": 0.5, "confusion_matrix": matrix}
    (path / "metrics.json").write_text(
        json.dumps({**metrics, "label_names": ["a", "b", "c"]}), "utf-8"
    )
    bundle = read_bundle(path)
    assert bundle is not None

    view = matrix_view(bundle, "compared")

    assert view.normalised == [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [2 / 6, 0.0, 4 / 6]]
    a, b, c = view.scores
    assert (a.precision, a.recall, a.f1, a.support) == (3 / 5, 3 / 4, 6 / 9, 4)
    assert (b.precision, b.recall, b.f1, b.support) == (0.0, 0.0, 0.0, 0)
    assert (c.precision, c.recall, c.support) == (1.0, 4 / 6, 6)


def test_empty_and_missing_registries_still_build(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    for root in (empty, tmp_path / "absent"):
        data = build_report_data(root, now=NOW)
        page = render_report(data)
        assert data.points == [] and data.ranking == [] and data.matrices == []
        assert "No bundles to rank." in page
        assert "No bundle is active" in page
    assert "does not exist" in " ".join(build_report_data(tmp_path / "absent").missing)


def test_broken_pointer_is_reported_not_raised(registry: Path) -> None:
    (registry / "active.json").write_text('{"model_dir": "../../etc", "selected_at": "x"', "utf-8")

    data = build_report_data(registry, now=NOW)

    assert data.overview.active_model_id is None
    assert data.overview.pointer_healthy is False
    assert any("active.json" in f for f in data.overview.pointer_findings)
    assert [m.role for m in data.matrices] == ["best challenger"]
    assert data.matrices_note == "Comparison incomplete: no bundle is active."


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_script_json_round_trips_and_cannot_close_a_script(value: object) -> None:
    text = script_json(value)

    assert json.loads(text) == value
    assert "<" not in text and ">" not in text and "&" not in text


def _hostile_registry(models_dir: Path, make_bundle: BundleFactory) -> dict[str, str]:
    """Bundles and files whose every string tries to inject markup or script."""
    evil_labels = ["<svg onload=alert(5)>", *LABELS[1:]]
    make_bundle(EVIL_NAME, accuracy=0.9, seed=1)
    make_bundle("<script>alert(2)<\\script>", accuracy=0.8, seed=2)
    make_bundle(
        "labels",
        accuracy=0.85,
        seed=3,
        label_set=evil_labels,
        extra_metadata={"schema_version": "<b>v9</b></script><script>alert(4)</script>"},
        schema_hash="000000000000",
    )
    make_bundle("x" * 255, accuracy=0.7, seed=4)
    make_bundle("bad-date", seed=5, created_at="<script>alert(6)</script>")
    _activate(models_dir, EVIL_NAME, EVIL_NOTE)
    return {"labels": evil_labels[0]}


def test_hostile_strings_are_escaped_everywhere(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    evil = _hostile_registry(models_dir, make_bundle)

    page = render_report(build_report_data(models_dir, compare=(EVIL_NAME, "labels"), now=NOW))
    markup = page[: page.index('<script type="application/json"')]
    payload = page[
        page.index('id="report-data">') : page.index("</script>", page.index("report-data"))
    ]

    for raw in (EVIL_NAME, EVIL_NOTE, "<script>alert(2)", "<svg", "<b>v9</b>", "alert(6)</script>"):
        assert raw not in markup
    assert html.escape(EVIL_NAME) in markup
    assert html.escape(EVIL_NOTE) in markup
    # Only this page's own three script elements exist.
    assert len(re.findall(r"<script\b", page)) == 3
    assert "<" not in payload[len('id="report-data">') :]
    figures = json.loads(payload[len('id="report-data">') :])["figures"]
    (right,) = [f for f in figures if f["id"] == "chart-matrix-1"]
    heatmap_labels = right["data"][0]["x"]
    assert html.escape(evil["labels"], quote=False) in heatmap_labels


def test_write_report_replaces_the_file_whole(registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", "utf-8")

    path = write_report(registry, out, now=NOW)

    assert path == out
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "plotly.js v" in page  # inlined, not a CDN link
    assert not re.search(r"<script[^>]*\ssrc=|<link\b", page)  # nothing loaded from elsewhere
    assert [p.name for p in tmp_path.iterdir() if p.name != "models"] == ["report.html"]


def test_cli_writes_the_report_and_prints_its_path(registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    before = read_active(registry)

    result = runner.invoke(app, ["report", "--models-dir", str(registry), "--out", str(out)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"Report written to {out}"
    assert "run-2" in out.read_text("utf-8")
    assert read_active(registry) == before


def test_cli_json_is_one_document(registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"

    result = runner.invoke(
        app,
        [
            "report",
            "--models-dir",
            str(registry),
            "--out",
            str(out),
            "--json",
            "--compare",
            "run-1",
            "run-3",
        ],
    )

    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["path"] == str(out)
    assert [m["model_id"] for m in document["report"]["matrices"]] == ["run-1", "run-3"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--compare", "run-1", "nope"], "no such bundle in the registry"),
        (
            ["--out", "/nonexistent-dir/r.html"],
            "Cannot write the report to /nonexistent-dir/r.html: the directory /nonexistent-dir "
            "does not exist",
        ),
        (["--out", "/"], "Cannot write the report to /: it is a directory"),
    ],
)
def test_cli_failures_are_one_sentence(
    registry: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    result = runner.invoke(app, ["report", "--models-dir", str(registry), *args])

    assert result.exit_code == 1
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert ".tmp" not in result.stderr  # never the name of an internal temporary file


def test_cli_without_plotly_says_how_to_install(registry: Path, tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import plotly` fail as if it were not installed.
    code = "import sys; sys.modules['plotly'] = None; from taskclf.cli.main import main; main()"
    out = tmp_path / "r.html"
    result = subprocess.run(
        [sys.executable, "-c", code, "report", "--models-dir", str(registry), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "pip install 'taskclf[report]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_open_hands_the_file_to_the_browser(registry: Path, tmp_path: Path) -> None:
    # webbrowser runs $BROWSER (with %s replaced by the URL) and waits for it.
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(
        f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])", "utf-8"
    )
    out = tmp_path / "r.html"
    taskclf = Path(sys.executable).with_name("taskclf")

    result = subprocess.run(
        [str(taskclf), "report", "--models-dir", str(registry), "--out", str(out), "--open"],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "BROWSER": f"{sys.executable} {browser} %s",
            "TASKCLF_CACHE_DIR": os.environ["TASKCLF_CACHE_DIR"],  # never the user's cache
        },
    )

    assert result.returncode == 0, result.stderr
    assert opened.read_text("utf-8") == out.as_uri()


def test_verify_on_the_callers_scan_equals_its_own(registry: Path) -> None:
    # The report hands its one scan to verify_registry instead of scanning twice.
    from taskclf.model_registry import list_bundles, verify_registry

    assert verify_registry(registry, bundles=list_bundles(registry)) == verify_registry(registry)


def test_time_chart_switches_to_webgl_above_the_threshold(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskclf.report.render as render

    data = build_report_data(registry, now=NOW)
    small = render.render_report(data)
    monkeypatch.setattr(render, "WEBGL_POINT_THRESHOLD", len(data.points) - 1)
    large = render.render_report(data)

    def kinds(page: str) -> set[str]:
        start = page.index('id="report-data">') + len('id="report-data">')
        payload = json.loads(page[start : page.index("</script>", start)])
        (time_chart,) = [f for f in payload["figures"] if f["id"] == "chart-time"]
        return {trace["type"] for trace in time_chart["data"] if trace["mode"] == "markers"}

    assert kinds(small) == {"scatter"}
    assert kinds(large) == {"scattergl"}


def test_report_shows_every_alias_timeline(registry: Path) -> None:
    from taskclf.model_registry import activate_bundle

    assert build_report_data(registry, now=NOW).aliases[0].name == "active"
    assert "aliases-section" not in render_report(build_report_data(registry, now=NOW))

    activate_bundle(registry, "run-1", alias="canary", actor="ana", message=EVIL_NOTE)
    activate_bundle(registry, "run-3", alias="canary", pin=True)
    activate_bundle(registry, "run-2", alias="staging")
    before = sorted(p.name for p in registry.rglob("*"))
    data = build_report_data(registry, now=NOW)
    assert sorted(p.name for p in registry.rglob("*")) == before  # the report writes nothing
    by_name = {alias.name: alias for alias in data.aliases}
    assert list(by_name) == ["active", "canary", "staging"]
    canary = by_name["canary"]
    assert canary.model_id == "run-3" and canary.pinned and canary.problem is None
    assert [(h.from_model_id, h.to_model_id) for h in canary.history] == [
        (None, "run-1"),
        ("run-1", "run-3"),
    ]
    assert canary.history[0].actor == "ana" and canary.history[0].message == EVIL_NOTE
    assert canary.history[1].pinned
    page = render_report(data)
    assert 'id="aliases-section"' in page
    assert 'id="history-alias-canary"' in page and 'id="history-alias-staging"' in page
    assert EVIL_NOTE not in page and html.escape(EVIL_NOTE) in page
    assert "run-3 (pinned)" in page
