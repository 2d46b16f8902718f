"""Model loaders (LightGBM text, skops) on tiny real models trained in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from taskclf.infer.loaders import load_lightgbm, load_model, load_skops
from taskclf.infer.resolve import ActiveModelReloader
from taskclf.model_registry import (
    MissingExtraError,
    ModelLoadError,
    RegistryError,
    promote_bundle,
    save_bundle,
)
from taskclf.samples import write_bundle

NAMES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    features, target = load_iris(return_X_y=True)
    # 60 rows, all three classes: every 2nd-3rd sample.
    return features[::2][:60], target[::2][:60]


def _train_lightgbm(features: Any, target: Any, rounds: int = 5) -> Any:
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
        "seed": 0,
        "deterministic": True,
    }
    return lightgbm.train(params, lightgbm.Dataset(features, target), num_boost_round=rounds)


def _package(
    tmp_path: Path, name: str, artifact: Path, model_format: str | None, target: Any
) -> Path:
    labels = [NAMES[i] for i in target]
    bundle = save_bundle(
        tmp_path / "bundles" / name,
        artifact,
        schema_version="v1",
        y_true=labels,
        y_pred=labels,
        labels=NAMES,
        model_format=model_format,
    )
    return bundle.path


def lightgbm_bundle(tmp_path: Path, iris: tuple[Any, Any], name: str = "lgb") -> tuple[Path, Any]:
    features, target = iris
    booster = _train_lightgbm(features, target)
    artifact = tmp_path / f"{name}-out" / "model.txt"
    artifact.parent.mkdir(parents=True)
    booster.save_model(str(artifact))
    return _package(tmp_path, name, artifact, "lightgbm-text", target), booster


def skops_bundle(
    tmp_path: Path, iris: tuple[Any, Any], estimator: Any, name: str = "sk"
) -> tuple[Path, Any]:
    features, target = iris
    estimator.fit(features, target)
    artifact = tmp_path / f"{name}-out" / "model.skops"
    artifact.parent.mkdir(parents=True)
    sio.dump(estimator, artifact)
    return _package(tmp_path, name, artifact, "sklearn-skops", target), estimator


def _edit_metadata(bundle: Path, **changes: Any) -> None:
    path = bundle / "metadata.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


# --- LightGBM ---------------------------------------------------------------------------


def test_lightgbm_round_trip(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, booster = lightgbm_bundle(tmp_path, iris)
    features = iris[0]

    loaded = load_lightgbm(bundle)

    assert isinstance(loaded, lightgbm.Booster)
    np.testing.assert_allclose(loaded.predict(features), booster.predict(features))
    assert isinstance(load_model(bundle), lightgbm.Booster)


def test_lightgbm_without_model_files_uses_model_txt(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, booster = lightgbm_bundle(tmp_path, iris)
    document = json.loads((bundle / "metadata.json").read_text())
    del document["model_files"]
    (bundle / "metadata.json").write_text(json.dumps(document))

    loaded = load_lightgbm(bundle)

    np.testing.assert_allclose(loaded.predict(iris[0]), booster.predict(iris[0]))


def test_placeholder_model_txt_is_not_a_lightgbm_model(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "sample", seed=1)  # model.txt is a placeholder line
    with pytest.raises(ModelLoadError, match=r"model\.txt is not a LightGBM text model"):
        load_lightgbm(bundle)


# --- skops ------------------------------------------------------------------------------


def test_skops_round_trip(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, estimator = skops_bundle(tmp_path, iris, LogisticRegression(max_iter=500))

    loaded = load_skops(bundle)

    assert isinstance(loaded, LogisticRegression)
    assert (loaded.predict(iris[0]) == estimator.predict(iris[0])).all()
    assert isinstance(load_model(bundle), LogisticRegression)


def test_skops_refuses_untrusted_types_unless_listed(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, estimator = skops_bundle(tmp_path, iris, HistGradientBoostingClassifier(max_iter=5))
    needed = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

    with pytest.raises(ModelLoadError) as caught:
        load_skops(bundle)
    assert caught.value.untrusted == [needed]
    assert needed in str(caught.value) and "trusted=" in str(caught.value)
    with pytest.raises(ModelLoadError):
        load_model(bundle)

    loaded = load_skops(bundle, trusted=[needed])
    assert (loaded.predict(iris[0]) == estimator.predict(iris[0])).all()
    assert isinstance(load_model(bundle, trusted=[needed]), HistGradientBoostingClassifier)


def test_a_pickle_is_not_loaded(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, _ = skops_bundle(tmp_path, iris, LogisticRegression(max_iter=500))
    canary = tmp_path / "canary"
    # A pickle that would create a file if it were ever unpickled.
    payload = (
        b"cos\nsystem\n(S'touch " + str(canary).encode() + b"'\ntR."
    )  # protocol 0: os.system(...)
    (bundle / "model.skops").write_bytes(payload)

    with pytest.raises(ModelLoadError, match="not a skops file"):
        load_skops(bundle)
    assert not canary.exists()


# --- load_model and artifact checks -------------------------------------------------------


def test_load_model_needs_a_known_model_format(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    sample = write_bundle(tmp_path / "sample", seed=1)
    with pytest.raises(ModelLoadError, match="declares no model_format") as caught:
        load_model(sample)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RegistryError)

    bundle, _ = lightgbm_bundle(tmp_path, iris)
    _edit_metadata(bundle, model_format="onnx")
    with pytest.raises(ModelLoadError, match=r"unknown model_format 'onnx' \(known: lightgbm-text"):
        load_model(bundle)

    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["../outside.txt"], "outside the bundle"),
        (["/etc/passwd"], "outside the bundle"),
        (["a.txt", "b.txt"], "exactly one .txt file"),
        ([], "exactly one .txt file"),
        ("model.txt", "not a list of paths"),
        (["gone.txt"], "gone.txt is missing"),
    ],
)
def test_bad_model_files_are_refused(
    tmp_path: Path, iris: tuple[Any, Any], files: object, message: str
) -> None:
    bundle, _ = lightgbm_bundle(tmp_path, iris)
    (tmp_path / "bundles" / "outside.txt").write_text("x")
    _edit_metadata(bundle, model_files=files)
    with pytest.raises(ModelLoadError, match=message):
        load_model(bundle)


def test_symlinked_artifact_is_refused(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    bundle, _ = lightgbm_bundle(tmp_path, iris)
    real = tmp_path / "elsewhere.txt"
    (bundle / "model.txt").rename(real)
    os.symlink(real, bundle / "model.txt")
    with pytest.raises(ModelLoadError, match="is a symlink"):
        load_lightgbm(bundle)


@pytest.mark.parametrize(
    ("module", "loader", "extra"),
    [
        ("lightgbm", load_lightgbm, "lightgbm"),
        ("skops.io", load_skops, "sklearn"),
        ("sklearn", load_skops, "sklearn"),
    ],
)
def test_missing_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, loader: Any, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(MissingExtraError) as caught:
        loader(tmp_path)
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, RegistryError)
    assert f"pip install 'taskclf[{extra}]'" in str(caught.value)


def test_importing_the_loaders_imports_no_model_library() -> None:
    code = (
        "import sys, taskclf.infer.loaders, taskclf.infer, taskclf.model_registry\n"
        "heavy = [m for m in ('lightgbm', 'sklearn', 'skops', 'numpy') if m in sys.modules]\n"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- with the reloader --------------------------------------------------------------------


def test_reloader_serves_a_real_booster_and_swaps(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "registry.toml").write_text(f"labels = {json.dumps(NAMES)}\n")
    first, _ = lightgbm_bundle(tmp_path, iris, "first")
    promote_bundle(first, models)
    reloader = ActiveModelReloader(models, loader=load_lightgbm, check_interval_s=0)
    assert isinstance(reloader.check_reload(), lightgbm.Booster)
    assert reloader.current_bundle is not None
    assert reloader.current_bundle.model_id == "first"

    second, _ = skops_bundle(tmp_path, iris, LogisticRegression(max_iter=500), "second")
    reloader_any = ActiveModelReloader(models, loader=load_model, check_interval_s=0)
    assert isinstance(reloader_any.check_reload(), lightgbm.Booster)
    result = promote_bundle(second, models, name="zz-second")
    # Same perfect F1: the newer bundle ranks first (created_at), so the pointer moves.
    assert result.active_updated
    assert isinstance(reloader_any.check_reload(), LogisticRegression)
