"""Registry configuration (registry.toml, $TASKCLF_LABELS, --labels): own labels and schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from taskclf.cli.main import app
from taskclf.core.hashing import stable_hash
from taskclf.core.schema import FEATURE_SCHEMA_REGISTRY, columns_hash
from taskclf.core.types import LABEL_SET_V1, CoreLabel
from taskclf.infer.resolve import ActiveModelReloader, ModelResolutionError, resolve_model_dir
from taskclf.model_registry import (
    DEFAULT_REGISTRY_CONFIG,
    ActivationError,
    PromotionError,
    RegistryConfig,
    RegistryConfigError,
    RegistryError,
    SchemaDeclaration,
    activate_bundle,
    check_activatable,
    execute_prune,
    find_best_model,
    list_rows,
    load_registry_config,
    plan_prune,
    promote_bundle,
    read_active,
    read_index_cache,
    resolve_active_model,
    verify_registry,
    write_index_cache,
)
from taskclf.model_registry.config import CONFIG_FILE, LABELS_ENV
from taskclf.model_registry.selection import label_set_difference
from taskclf.report.data import build_report_data
from taskclf.samples import write_bundle

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None, LABELS_ENV: None})

IRIS = ["setosa", "versicolor", "virginica"]
IRIS_COLUMNS = [
    ["sepal_length", "float"],
    ["sepal_width", "float"],
    ["petal_length", "float"],
    ["petal_width", "float"],
]
IRIS_HASH = columns_hash((name, kind) for name, kind in IRIS_COLUMNS)

IRIS_TOML = f"""\
labels = {json.dumps(IRIS)}

[[schemas]]
version = "iris-v2"
hash = "0a1b2c3d4e5f"

[[schemas]]
version = "iris-v1"
columns = {json.dumps(IRIS_COLUMNS)}
"""


@pytest.fixture(autouse=True)
def _no_labels_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LABELS_ENV, raising=False)


@pytest.fixture
def iris(models_dir: Path) -> Path:
    """A registry declaring the iris labels and two schemas (iris-v2 newest, iris-v1)."""
    (models_dir / CONFIG_FILE).write_text(IRIS_TOML, "utf-8")
    return models_dir


def iris_bundle(path: Path, *, seed: int = 0, version: str = "iris-v1", **kwargs: Any) -> Path:
    schema_hash = IRIS_HASH if version == "iris-v1" else "0a1b2c3d4e5f"
    return write_bundle(
        path, seed=seed, label_set=IRIS, schema_version=version, schema_hash=schema_hash, **kwargs
    )


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_sentence_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- defaults: exactly today's behaviour -----------------------------------------------------


def test_defaults_are_taskclf_labels_and_v3_v2_v1() -> None:
    config = RegistryConfig()
    assert config.labels == tuple(label.value for label in CoreLabel)
    assert config.label_set == LABEL_SET_V1
    assert config.schema_order == ("v3", "v2", "v1")
    assert config.schema_hashes == {
        "v3": "7f29b4b8795e",
        "v2": "a15f4751a947",
        "v1": "4077fe0dba70",
    }
    assert config == DEFAULT_REGISTRY_CONFIG


def test_no_file_and_missing_registry_give_the_defaults(tmp_path: Path, models_dir: Path) -> None:
    assert load_registry_config(models_dir) == DEFAULT_REGISTRY_CONFIG
    assert load_registry_config(tmp_path / "absent") == DEFAULT_REGISTRY_CONFIG


def test_columns_hash_is_the_spec_rule_for_the_builtin_schemas() -> None:
    for schema in FEATURE_SCHEMA_REGISTRY.values():
        pairs = [(name, tp.__name__) for name, tp in schema.COLUMNS.items()]
        payload = json.dumps([[n, t] for n, t in pairs], separators=(",", ":"))
        assert columns_hash(pairs) == stable_hash(payload) == schema.SCHEMA_HASH


def test_a_file_declaring_only_builtins_behaves_like_no_file(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v1-run", seed=1)
    make_bundle("v2-run", seed=2, schema_version="v2")
    before = find_best_model(models_dir)
    (models_dir / CONFIG_FILE).write_text(
        '[[schemas]]\nversion = "v3"\n[[schemas]]\nversion = "v2"\n'
        '[[schemas]]\nversion = "v1"\nhash = "4077fe0dba70"\n'
    )
    config = load_registry_config(models_dir)
    assert config.schema_hashes == DEFAULT_REGISTRY_CONFIG.schema_hashes
    assert config.labels == DEFAULT_REGISTRY_CONFIG.labels
    after = find_best_model(models_dir)
    assert after.model_dump() == before.model_dump()


# --- the file ----------------------------------------------------------------------------------


def test_file_declares_labels_in_order_and_schemas_newest_first(iris: Path) -> None:
    config = load_registry_config(iris)
    assert config.labels == tuple(IRIS)
    assert config.schema_order == ("iris-v2", "iris-v1")
    assert config.schema_hash("iris-v1") == IRIS_HASH
    assert config.schema_hash("v1") is None
    assert config.version_of_hash("0a1b2c3d4e5f") == "iris-v2"
    assert config.source == str(iris / CONFIG_FILE)
    assert config.labels_source == str(iris / CONFIG_FILE)


@pytest.mark.parametrize(
    ("content", "key", "detail"),
    [
        ("labels = [", None, "not valid TOML"),
        ('label = ["a"]', "label", "unknown key"),
        ('labels = "a,b"', "labels", "must be a list of strings"),
        ("labels = []", "labels", "the label set is empty"),
        ('labels = ["a", "a"]', "labels", "listed twice"),
        ('labels = ["a", 1]', "labels", "not a string"),
        ('labels = ["a", " b"]', "labels", "surrounding spaces"),
        ("format = 2", "format", "unsupported format"),
        ('[schemas]\nversion = "x"', "schemas", "array of tables"),
        ("schemas = []", "schemas", "declares no schema"),
        ('[[schemas]]\nhash = "abc"', "schemas[0].version", "non-blank name"),
        ('[[schemas]]\nversion = "x"', "schemas[0]", "needs a hash or its columns"),
        ('[[schemas]]\nversion = "x"\nhash = 3', "schemas[0].hash", "non-empty string"),
        ('[[schemas]]\nversion = "x"\nhahs = "abc"', "schemas[0].hahs", "unknown key"),
        ('[[schemas]]\nversion = "x"\ncolumns = []', "schemas[0].columns", "non-empty list"),
        (
            '[[schemas]]\nversion = "x"\ncolumns = [["a", "decimal"]]',
            "schemas[0].columns[0]",
            "unknown type 'decimal'",
        ),
        (
            '[[schemas]]\nversion = "x"\ncolumns = [["a", "int"], ["a", "float"]]',
            "schemas[0].columns[1]",
            "listed twice",
        ),
        ('[[schemas]]\nversion = "x"\ncolumns = [["a"]]', "schemas[0].columns[0]", "pair"),
        (
            '[[schemas]]\nversion = "x"\nhash = "000000000000"\ncolumns = [["a", "int"]]',
            "schemas[0].hash",
            "declared columns hash to",
        ),
        ('[[schemas]]\nversion = "v1"\nhash = "000000000000"', "schemas[0]", "built-in"),
        (
            '[[schemas]]\nversion = "x"\nhash = "aaa"\n[[schemas]]\nversion = "x"\nhash = "bbb"',
            "schemas[1]",
            "declared twice",
        ),
        (
            '[[schemas]]\nversion = "x"\nhash = "aaa"\n[[schemas]]\nversion = "y"\nhash = "aaa"',
            "schemas[1]",
            "same hash",
        ),
    ],
)
def test_malformed_file_is_one_error_naming_file_and_key(
    models_dir: Path, content: str, key: str | None, detail: str
) -> None:
    path = models_dir / CONFIG_FILE
    path.write_text(content + "\n", "utf-8")

    with pytest.raises(RegistryConfigError) as caught:
        load_registry_config(models_dir)

    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, RegistryError)
    assert error.source == str(path) and error.key == key
    message = str(error)
    assert str(path) in message and detail in message
    assert key is None or repr(key) in message
    assert "\n" not in message


def test_unreadable_configs_are_errors_not_defaults(models_dir: Path) -> None:
    path = models_dir / CONFIG_FILE
    path.write_bytes(b'labels = ["caf\xe9"]\n')
    with pytest.raises(RegistryConfigError, match="not UTF-8"):
        load_registry_config(models_dir)
    path.write_bytes(b"# padding\n" * 120_000)  # over the 1 MiB cap
    with pytest.raises(RegistryConfigError, match="unreadable"):
        load_registry_config(models_dir)
    path.unlink()
    path.mkdir()
    with pytest.raises(RegistryConfigError, match="unreadable"):
        load_registry_config(models_dir)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        RegistryConfig(labels=("a", "a"))
    with pytest.raises(ValueError, match="at least one schema"):
        RegistryConfig(schemas=())


# --- overrides ----------------------------------------------------------------------------


def test_env_overrides_file_and_option_overrides_env(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LABELS_ENV, " x , y ")
    config = load_registry_config(iris)
    assert config.labels == ("x", "y")
    assert config.labels_source == LABELS_ENV
    assert config.schema_order == ("iris-v2", "iris-v1")  # schemas still from the file

    assert load_registry_config(iris, labels="p,q").labels == ("p", "q")
    assert load_registry_config(iris, labels=["r"]).labels == ("r",)

    monkeypatch.setenv(LABELS_ENV, "  ")
    assert load_registry_config(iris).labels == tuple(IRIS)


@pytest.mark.parametrize("value", ["a,,b", "a,a", ","])
def test_bad_env_labels_name_the_variable(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(LABELS_ENV, value)
    with pytest.raises(RegistryConfigError) as caught:
        load_registry_config(models_dir)
    assert caught.value.source == LABELS_ENV
    assert LABELS_ENV in str(caught.value)


# --- the library with a custom label set --------------------------------------------------------


def test_custom_labels_rank_resolve_and_activate(iris: Path, make_bundle: BundleFactory) -> None:
    iris_bundle(iris / "iris-a", seed=1, macro_f1=0.7)
    iris_bundle(iris / "iris-b", seed=2, macro_f1=0.9)
    make_bundle("taskclf-run", seed=3, macro_f1=0.99)

    report = find_best_model(iris)
    assert [b.model_id for b in report.ranked] == ["iris-b", "iris-a"]
    assert report.required_schema_hash == IRIS_HASH  # iris-v2 had none: fell back
    assert {e.model_id: e.reason for e in report.excluded} == {
        "taskclf-run": "incompatible: schema_hash mismatch"
    }

    bundle, scan = resolve_active_model(iris)
    assert bundle is not None and bundle.model_id == "iris-b" and scan is not None
    pointer = read_active(iris)
    assert pointer is not None and pointer.model_id == "iris-b"
    again, rescanned = resolve_active_model(iris)
    assert again is not None and again.model_id == "iris-b" and rescanned is None

    assert check_activatable(iris, "iris-a").model_id == "iris-a"
    assert activate_bundle(iris, "iris-a").model_id == "iris-a"
    assert resolve_model_dir(None, iris) == iris / "iris-a"


def test_newest_declared_schema_wins(iris: Path) -> None:
    iris_bundle(iris / "old", seed=1, macro_f1=0.9)
    iris_bundle(iris / "new", seed=2, macro_f1=0.5, version="iris-v2")
    report = find_best_model(iris)
    assert [b.model_id for b in report.ranked] == ["new"]
    assert report.required_schema_hash == "0a1b2c3d4e5f"


def test_taskclf_bundle_in_custom_registry_says_which_labels_differ(
    tmp_path: Path, models_dir: Path
) -> None:
    (models_dir / CONFIG_FILE).write_text(f"labels = {json.dumps(IRIS)}\n")  # builtin schemas
    write_bundle(models_dir / "taskclf-run", seed=1)
    candidate = write_bundle(tmp_path / "cand", seed=2)

    with pytest.raises(ActivationError) as caught:
        activate_bundle(models_dir, "taskclf-run")
    message = str(caught.value)
    assert "label_set mismatch" in message
    assert "missing: setosa, versicolor, virginica" in message
    assert "extra: Build, Debug" in message

    with pytest.raises(PromotionError) as refused:
        promote_bundle(candidate, models_dir)
    assert refused.value.reason.startswith("incompatible: label_set mismatch (missing: setosa")

    rows = list_rows(models_dir)
    assert rows[0].notes == "incompatible: label_set mismatch"  # CLI.md: exactly the reason

    report = verify_registry(models_dir)
    finding = next(f for f in report.findings if f.code == "bundle-incompatible")
    assert "missing: setosa, versicolor, virginica" in finding.message
    assert report.bundles[0].reason == "incompatible: label_set mismatch"

    with pytest.raises(ModelResolutionError) as unresolved:
        resolve_model_dir(None, models_dir)
    assert "  - taskclf-run: incompatible: label_set mismatch" in unresolved.value.message


def test_promotion_into_custom_registry_moves_the_pointer(tmp_path: Path, iris: Path) -> None:
    first = promote_bundle(iris_bundle(tmp_path / "c1", seed=1, macro_f1=0.6), iris)
    assert first.active_updated and first.active is not None
    second = promote_bundle(iris_bundle(tmp_path / "c2", seed=2, macro_f1=0.8), iris)
    assert second.active_updated and second.active is not None
    assert second.active.model_id == "c2"


def test_explicit_config_argument_needs_no_file(models_dir: Path) -> None:
    iris_bundle(models_dir / "run", seed=1)
    assert find_best_model(models_dir).best is None
    schemas = (SchemaDeclaration(version="iris-v1", hash=IRIS_HASH),)
    config = RegistryConfig(labels=tuple(IRIS), schemas=schemas)
    assert find_best_model(models_dir, config=config).best is not None
    assert check_activatable(models_dir, "run", config=config).model_id == "run"


def test_reloader_uses_the_registry_labels(iris: Path) -> None:
    iris_bundle(iris / "run", seed=1)
    reloader = ActiveModelReloader(iris, loader=lambda path: path.name, check_interval_s=0)
    assert reloader.check_reload() == "run"


def test_malformed_config_stops_library_calls(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run", seed=1)
    (models_dir / CONFIG_FILE).write_text("labels = 3\n")
    for call in (
        lambda: find_best_model(models_dir),
        lambda: resolve_active_model(models_dir),
        lambda: check_activatable(models_dir, "run"),
        lambda: list_rows(models_dir),
        lambda: resolve_model_dir(None, models_dir),
    ):
        with pytest.raises(RegistryConfigError):
            call()
    assert read_active(models_dir) is None

    report = verify_registry(models_dir)
    assert not report.healthy
    finding = next(f for f in report.findings if f.code == "config-invalid")
    assert "'labels'" in finding.message and "default labels" in finding.message
    assert report.bundles[0].eligible  # judged against the defaults, and said so


def test_reloader_keeps_its_model_while_the_config_is_broken(iris: Path) -> None:
    iris_bundle(iris / "run", seed=1)
    reloader = ActiveModelReloader(iris, loader=lambda path: path.name, check_interval_s=0)
    assert reloader.check_reload() == "run"
    config = load_registry_config(iris)
    (iris / CONFIG_FILE).write_text("labels = [\n")
    activate_bundle(iris, "run", config=config)  # a new pointer write: the reloader resolves
    assert reloader.check_reload() is None
    assert reloader.current == "run"


# --- the CLI ------------------------------------------------------------------------------


def test_cli_train_list_with_registry_toml(iris: Path, make_bundle: BundleFactory) -> None:
    iris_bundle(iris / "iris-a", seed=1)
    make_bundle("taskclf-run", seed=2)

    result = run("train", "list", "--models-dir", iris, "--json")

    assert result.exit_code == 0, result.stderr
    rows = {row["model_id"]: row for row in json.loads(result.stdout)}
    assert rows["iris-a"]["eligible"] is True and rows["iris-a"]["notes"] is None
    assert rows["taskclf-run"]["notes"] == "incompatible: unknown schema_version 'v1'"


def test_cli_labels_option_and_env(models_dir: Path) -> None:
    write_bundle(models_dir / "custom", seed=1, label_set=["cat", "dog"])

    def eligible(*extra: str, env: dict[str, str] | None = None) -> bool:
        result = run("train", "list", "--models-dir", models_dir, "--json", *extra, env=env)
        assert result.exit_code == 0, result.stderr
        return bool(json.loads(result.stdout)[0]["eligible"])

    assert not eligible()
    assert eligible("--labels", "dog,cat")
    assert eligible(env={LABELS_ENV: "cat,dog"})
    assert not eligible("--labels", "cat", env={LABELS_ENV: "cat,dog"})  # option wins

    result = run("model", "set-active", "--model-id", "custom", "--models-dir", models_dir)
    line = one_sentence_error(result)
    assert "label_set mismatch" in line and "missing: " in line and "extra: cat, dog" in line
    assert not (models_dir / "active.json").exists()

    result = run(
        "model", "set-active", "--model-id", "custom", "--models-dir", models_dir,
        "--labels", "cat,dog",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = run("model", "resolve", "--models-dir", models_dir, "--labels", "cat,dog", "--json")
    assert json.loads(result.stdout)["active"]["model_id"] == "custom"
    result = run("model", "verify", "--models-dir", models_dir, "--labels", "cat,dog", "--json")
    assert [b["eligible"] for b in json.loads(result.stdout)["bundles"]] == [True]


def test_cli_promote_into_custom_registry(tmp_path: Path, iris: Path) -> None:
    candidate = iris_bundle(tmp_path / "cand", seed=1)
    result = run("model", "promote", candidate, "--models-dir", iris, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["active_updated"] is True

    wrong = write_bundle(tmp_path / "wrong", seed=2)
    line = one_sentence_error(run("model", "promote", wrong, "--models-dir", iris))
    assert "unknown schema_version 'v1'" in line


def test_cli_bad_labels_option_is_one_sentence(models_dir: Path) -> None:
    line = one_sentence_error(run("train", "list", "--models-dir", models_dir, "--labels", "a,,b"))
    assert "--labels" in line


def test_cli_malformed_config_is_one_sentence_in_a_real_process(models_dir: Path) -> None:
    write_bundle(models_dir / "run", seed=1)
    path = models_dir / CONFIG_FILE
    path.write_text('labels = ["a", "a"]\n')
    script = Path(sys.executable).with_name("taskclf")
    env = {k: v for k, v in os.environ.items() if k != LABELS_ENV}
    for args in (
        ["train", "list"],
        ["model", "resolve"],
        ["model", "set-active", "--model-id", "run"],
    ):
        done = subprocess.run(
            [str(script), *args, "--models-dir", str(models_dir)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
        assert str(path) in lines[0] and "'labels'" in lines[0] and "listed twice" in lines[0]
    assert not (models_dir / "active.json").exists()

    done = subprocess.run(
        [str(script), "model", "verify", "--models-dir", str(models_dir), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    codes = [f["code"] for f in json.loads(done.stdout)["findings"]]
    assert "config-invalid" in codes


# --- the label difference ---------------------------------------------------------------------


@given(
    st.lists(st.sampled_from("abcdef"), max_size=8),
    st.lists(st.sampled_from("abcdef"), max_size=8),
)
def test_label_difference_is_empty_exactly_when_compatible(
    bundle_labels: list[str], required: list[str]
) -> None:
    missing, extra = label_set_difference(bundle_labels, required)
    assert (not missing and not extra) == (sorted(bundle_labels) == sorted(required))
    assert Counter(bundle_labels) + Counter(missing) == Counter(required) + Counter(extra)


_NAMES = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters='"\\'),
    min_size=1,
    max_size=12,
).filter(lambda name: name == name.strip())


@given(
    labels=st.lists(_NAMES, min_size=2, max_size=6, unique=True),  # samples need 2+
    columns=st.lists(
        st.tuples(_NAMES, st.sampled_from(["str", "int", "float", "bool", "list", "datetime"])),
        min_size=1,
        max_size=6,
        unique_by=lambda column: column[0],
    ),
    seed=st.integers(0, 2**16),
)
def test_declared_labels_and_columns_round_trip_and_match_bundles(
    tmp_path_factory: pytest.TempPathFactory,
    labels: list[str],
    columns: list[tuple[str, str]],
    seed: int,
) -> None:
    models = tmp_path_factory.mktemp("models")
    (models / CONFIG_FILE).write_text(
        f"labels = {json.dumps(labels, ensure_ascii=False)}\n[[schemas]]\n"
        f'version = "mine"\ncolumns = {json.dumps(columns, ensure_ascii=False)}\n',
        "utf-8",
    )
    config = load_registry_config(models)
    assert config.labels == tuple(labels)
    expected = stable_hash(json.dumps([list(c) for c in columns], separators=(",", ":")))
    assert config.schema_hash("mine") == expected

    shuffled = sorted(labels, key=lambda label: hash((label, seed)))
    write_bundle(models / "run", label_set=shuffled, schema_version="mine", schema_hash=expected)
    report = find_best_model(models)
    assert [b.model_id for b in report.ranked] == ["run"]
    assert report.required_schema_hash == expected


def test_report_judges_eligibility_by_the_registry_config(iris: Path) -> None:
    iris_bundle(iris / "iris-a", seed=1)
    activate_bundle(iris, "iris-a")
    data = build_report_data(iris)
    assert [(r.row.model_id, r.row.eligible) for r in data.ranking] == [("iris-a", True)]
    assert data.overview.model_dump()  # builds

    (iris / CONFIG_FILE).write_text("labels = [\n")
    broken = build_report_data(iris)
    assert any("registry.toml" in line and "default labels" in line for line in broken.missing)
    assert [(r.row.model_id, r.row.eligible) for r in broken.ranking] == [("iris-a", False)]


def test_prune_with_a_labels_override_ranks_and_refreshes_the_index_with_it(
    models_dir: Path,
) -> None:
    for seed, f1 in enumerate([0.5, 0.6, 0.7]):
        write_bundle(models_dir / f"pet-{seed}", seed=seed, label_set=["cat", "dog"], macro_f1=f1)
    config = load_registry_config(models_dir, labels="cat,dog")
    activate_bundle(models_dir, "pet-1", config=config)
    write_index_cache(models_dir, find_best_model(models_dir, config=config))

    plan = plan_prune(models_dir, keep=1, keep_history=0, config=config)
    assert [d.model_id for d in plan.to_delete] == ["pet-0"]
    assert "config" not in plan.model_dump(mode="json")
    executed = execute_prune(plan)

    assert [d.model_id for d in executed.to_delete] == ["pet-0"]
    assert sorted(p.name for p in models_dir.iterdir() if p.is_dir()) == ["pet-1", "pet-2"]
    index = read_index_cache(models_dir)
    assert index is not None and [e.model_id for e in index.ranked] == ["pet-2", "pet-1"]


def test_cli_package_fills_in_the_registry_labels_and_schema(tmp_path: Path, iris: Path) -> None:
    artifact = tmp_path / "model.txt"
    artifact.write_text("a model\n")
    predictions = tmp_path / "predictions.csv"
    predictions.write_text(
        "y_true,y_pred\nsetosa,setosa\nversicolor,virginica\nvirginica,virginica\n"
    )

    result = run(
        "model", "package", artifact, "--schema-version", "iris-v1",
        "--predictions", predictions, "--out", tmp_path / "runs" / "iris-run",
        "--models-dir", iris, "--promote", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["promotion"]["active_updated"] is True
    bundle = check_activatable(iris, "iris-run")
    assert bundle.metadata is not None
    assert bundle.metadata.label_set == IRIS and bundle.metadata.schema_hash == IRIS_HASH
