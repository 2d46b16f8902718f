"""Real models in, real models out: train, package, promote, serve, and swap on promotion.

Three real classifiers learn scikit-learn's wine data set (178 wines, 13
measurements, 3 cultivars; it ships inside scikit-learn, nothing is
downloaded): a one-split decision tree and a scaled logistic regression
saved with skops, and a LightGBM booster saved as text. Each is packaged
with ``save_bundle`` into a registry whose ``registry.toml`` declares the
wine labels and feature schema, then promoted, weakest first. An
``ActiveModelReloader`` serving held-out predictions with ``load_model``
swaps to each better model as the pointer moves.

Needs ``pip install 'taskclf[lightgbm,sklearn]'``. Run with
``python examples/real_models.py [--dir DIR]`` (default: a new temporary
directory, printed); it takes a few seconds.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import skops.io as sio
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from taskclf.infer.loaders import load_model
from taskclf.infer.resolve import ActiveModelReloader
from taskclf.model_registry import (
    load_registry_config,
    promote_bundle,
    read_active_history,
    save_bundle,
    verify_registry,
)

LABELS = ("barolo", "grignolino", "barbera")
"""The wine data set's three cultivars, in the order of its targets 0, 1, 2."""
SCHEMA_VERSION = "wine-v1"
TRUSTED = ["sklearn.tree._tree.Tree"]
"""The decision tree's node array: a type skops does not trust unless told to."""


def write_registry_config(models: Path, feature_names: Sequence[str]) -> None:
    """Declare the wine labels and feature schema: the registry judges bundles against them."""
    models.mkdir(parents=True)
    columns = [[name, "float"] for name in feature_names]
    (models / "registry.toml").write_text(
        f"labels = {json.dumps(list(LABELS))}\n\n"
        f'[[schemas]]\nversion = "{SCHEMA_VERSION}"\ncolumns = {json.dumps(columns)}\n',
        "utf-8",
    )


def predict(model: Any, features: Any) -> list[str]:
    """Class names predicted by a booster (probabilities) or an estimator (class indices)."""
    if isinstance(model, lightgbm.Booster):
        indices = np.asarray(model.predict(features)).argmax(axis=1)
    else:
        indices = model.predict(features)
    return [LABELS[int(i)] for i in indices]


def accuracy(model: Any, features: Any, truth: Sequence[str]) -> float:
    predicted = predict(model, features)
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def train_models(x_train: Any, y_train: Any) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """``(name, model_format, model, params)`` of each classifier, weakest first."""
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x_train, y_train)
    lgb_params = {
        "objective": "multiclass",
        "num_class": len(LABELS),
        "num_leaves": 7,
        "min_data_in_leaf": 5,
        "learning_rate": 0.1,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lightgbm.train(lgb_params, lightgbm.Dataset(x_train, y_train), num_boost_round=20)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    logistic.fit(x_train, y_train)
    return [
        ("tree-stump", "sklearn-skops", stump, {"max_depth": 1}),
        ("lightgbm-20", "lightgbm-text", booster, {**lgb_params, "num_boost_round": 20}),
        ("logistic", "sklearn-skops", logistic, {"C": 1.0, "scaled": True}),
    ]


def write_artifact(directory: Path, model_format: str, model: Any) -> Path:
    directory.mkdir(parents=True)
    if model_format == "lightgbm-text":
        path = directory / "model.txt"
        model.save_model(str(path))
    else:
        path = directory / "model.skops"
        sio.dump(model, path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Train, package, promote and serve; print what happens at each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="workspace (missing or empty)")
    args = parser.parse_args(argv)
    workspace = args.dir or Path(tempfile.mkdtemp(prefix="taskclf-real-models-"))
    if workspace.exists() and any(workspace.iterdir()):
        parser.error(f"{workspace} is not empty")
    models, candidates = workspace / "models", workspace / "candidates"

    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.4, random_state=0, stratify=data.target
    )
    truth = [LABELS[int(i)] for i in y_test]
    dataset_hash = hashlib.sha256(x_train.tobytes() + y_train.tobytes()).hexdigest()[:12]

    write_registry_config(models, data.feature_names)
    config = load_registry_config(models)
    schema_hash = config.schema_hash(SCHEMA_VERSION)
    print(f"workspace: {workspace}")
    print(f"registry: labels {', '.join(config.labels)}; schema {SCHEMA_VERSION} {schema_hash}")

    loader: Callable[[Path], Any] = functools.partial(load_model, trusted=TRUSTED)
    reloader = ActiveModelReloader(models, loader=loader, check_interval_s=0)
    for name, model_format, model, params in train_models(x_train, y_train):
        artifact = write_artifact(workspace / "artifacts" / name, model_format, model)
        bundle = save_bundle(
            candidates / name,
            artifact,
            schema_version=SCHEMA_VERSION,
            schema_hash=schema_hash,
            labels=list(LABELS),
            y_true=truth,
            y_pred=predict(model, x_test),
            params=params,
            dataset_hash=dataset_hash,
            model_format=model_format,
        )
        assert bundle.metrics is not None
        print(f"packaged {name} ({model_format}): macro_f1={bundle.metrics.macro_f1:.4f}")

        result = promote_bundle(bundle.path, models, move=True)
        active = result.active.model_id if result.active else None
        print(f"promoted {name}: pointer moved={result.active_updated}, active={active}")

        before = reloader.current_bundle.model_id if reloader.current_bundle else None
        old_accuracy = accuracy(reloader.current, x_test, truth) if reloader.current else None
        if reloader.check_reload() is not None:
            assert reloader.current_bundle is not None
            new_accuracy = accuracy(reloader.current, x_test, truth)
            if before is None:
                print(
                    f"serving {reloader.current_bundle.model_id}: "
                    f"held-out accuracy {new_accuracy:.4f}"
                )
            else:
                print(
                    f"reloader swapped {before} -> {reloader.current_bundle.model_id}: "
                    f"held-out accuracy {old_accuracy:.4f} -> {new_accuracy:.4f}"
                )

    assert reloader.current_bundle is not None
    print(f"final: serving {reloader.current_bundle.model_id}")
    for entry in read_active_history(models):
        old = entry.old.model_id if entry.old else None
        print(f"history: {old} -> {entry.new.model_id} ({(entry.new.reason or {}).get('note')})")
    report = verify_registry(models)
    errors = [f.message for f in report.findings if f.severity == "error"]
    print(f"verify: {'healthy' if report.healthy else 'UNHEALTHY'}")
    for message in errors:
        print(f"  error: {message}")


if __name__ == "__main__":
    main()
