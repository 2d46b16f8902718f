"""``taskclf demo``: builds a realistic registry offline and tours the commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from taskclf.cli.main import app
from taskclf.demo import build_sample_registry, prepare_directory
from taskclf.model_registry import list_bundles, read_active, read_active_history

runner = CliRunner(env={"COLUMNS": None})  # pipes get the wide page: rows never wrap


def test_sample_registry_is_realistic(tmp_path: Path) -> None:
    models_dir, candidates = prepare_directory(tmp_path / "ws")
    candidate = build_sample_registry(models_dir, candidates)

    bundles = list_bundles(models_dir)
    valid = [b for b in bundles if b.valid]
    assert len(bundles) == 6 and len(valid) == 5
    for bundle in valid:
        assert bundle.metrics is not None
        matrix = bundle.metrics.confusion_matrix
        assert len(matrix) == 8 and all(len(row) == 8 for row in matrix)
        assert sum(map(sum, matrix)) > 1000
    assert candidate.parent == candidates and (candidate / "metrics.json").is_file()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"

    result = runner.invoke(app, ["demo", "--dir", str(workspace)])

    assert result.exit_code == 0, result.stderr
    models_dir = workspace / "models"
    out = result.stdout
    for marker in (
        "Model Bundles",
        "$ taskclf train list",
        "$ taskclf model resolve",
        "$ taskclf model promote",
        "$ taskclf model history",
        "$ taskclf model rollback",
        "$ taskclf model verify",
    ):
        assert marker in out
    assert f"Explore further: taskclf train list --models-dir {models_dir}" in out
    # The demo ends with the HTML report of its registry, beside it.
    report = workspace / "report.html"
    assert out.rstrip().endswith(f"See the registry: open {report}")
    assert "2026-02-12_110000_run-0040" in report.read_text("utf-8")
    # list -> resolve (auto-repair) -> promotion -> rollback: three pointer moves
    notes = [(e.new.reason or {}).get("note") for e in read_active_history(models_dir)]
    assert notes == ["auto-repair", "promotion", "rollback"]
    pointer = read_active(models_dir)
    assert pointer is not None and pointer.model_id == "2026-02-12_110000_run-0040"


def test_demo_json_is_one_document(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "ws"), "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["command"].split(" --")[0] for s in data["steps"]][:2] == [
        "taskclf train list",
        "taskclf model resolve",
    ]
    assert len(data["steps"]) == 6
    assert data["report"] == str(tmp_path / "ws" / "report.html")
    assert data["steps"][2]["result"]["active_updated"] is True


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")

    result = runner.invoke(app, ["demo", "--dir", str(tmp_path)])

    assert result.exit_code == 1
    assert "is not empty; the demo only builds in a new or empty directory" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_demo_default_uses_a_fresh_temporary_directory() -> None:
    result = runner.invoke(app, ["demo", "--json"])

    assert result.exit_code == 0, result.stderr
    models_dir = Path(json.loads(result.stdout)["models_dir"])
    assert models_dir.name == "models" and models_dir.parent.name.startswith("taskclf-demo-")
    import shutil

    shutil.rmtree(models_dir.parent)


def test_demo_without_the_report_extra_says_how_to_get_it(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import plotly` fail as if it were not installed.
    code = "import sys; sys.modules['plotly'] = None; from taskclf.cli.main import main; main()"
    workspace = tmp_path / "ws"

    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--dir", str(workspace)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    last = result.stdout.rstrip().splitlines()[-1]
    assert "pip install 'taskclf[report]'" in last
    assert not (workspace / "report.html").exists()
