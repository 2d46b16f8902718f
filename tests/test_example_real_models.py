"""``examples/real_models.py`` end to end, in its own process: real models in, real models out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import lightgbm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from taskclf.infer.loaders import load_model
from taskclf.model_registry import (
    check_manifest,
    describe_bundle,
    read_active,
    read_active_history,
    verify_registry,
)

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "real_models.py"
SWAP = re.compile(r"^reloader swapped (\S+) -> (\S+): held-out accuracy ([\d.]+) -> ([\d.]+)$")


def test_example_trains_packages_promotes_and_swaps(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(workspace)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    swaps = [match.groups() for line in lines if (match := SWAP.match(line))]
    assert [(old, new) for old, new, _, _ in swaps] == [
        ("tree-stump", "lightgbm-20"),
        ("lightgbm-20", "logistic"),
    ]
    for _, _, before, after in swaps:
        assert float(after) > float(before)
    assert lines[-1] == "verify: healthy"
    assert "final: serving logistic" in lines

    models = workspace / "models"
    pointer = read_active(models)
    assert pointer is not None and pointer.model_id == "logistic"
    notes = [(e.new.reason or {}).get("note") for e in read_active_history(models)]
    assert notes == ["promotion"] * 3
    assert verify_registry(models).healthy
    assert not any((workspace / "candidates").iterdir())  # promoted with move=True

    expected = {
        "tree-stump": ("sklearn-skops", DecisionTreeClassifier),
        "lightgbm-20": ("lightgbm-text", lightgbm.Booster),
        "logistic": ("sklearn-skops", Pipeline),
    }
    for model_id, (model_format, kind) in expected.items():
        bundle = models / model_id
        assert check_manifest(bundle, deep=True).status == "match"
        description = describe_bundle(models, model_id)
        assert description.model_format == model_format
        assert description.label_set == ["barolo", "grignolino", "barbera"]
        assert description.schema_version == "wine-v1" and description.schema_known
        assert description.eligible
        model = load_model(bundle, trusted=["sklearn.tree._tree.Tree"])
        assert isinstance(model, kind)
    logistic = load_model(models / "logistic")
    assert isinstance(logistic.steps[-1][1], LogisticRegression)
