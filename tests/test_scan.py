"""REGISTRY.md §3: ``list_bundles`` — every subdirectory a bundle, never an exception."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclf.core.model_io import ModelMetadata
from taskclf.model_registry import list_bundles, read_bundle
from taskclf.model_registry._fs import MAX_FILE_BYTES, read_capped_stat
from taskclf.model_registry.errors import RegistryFileError
from taskclf.model_registry.lazy_bundle import cached_facts
from taskclf.model_registry.models import BundleMetrics, ModelBundle
from taskclf.model_registry.selection import bundle_facts
from taskclf.samples import write_bundle

FIELDS = tuple(ModelBundle.model_fields)

BundleFactory = Callable[..., Path]

REASON_PREFIXES = [
    "missing metadata.json",
    "missing metrics.json",
    "metadata.json parse error: ",
    "metadata.json validation error: ",
    "metrics.json parse error: ",
    "metrics.json validation error: ",
    "created_at parse error: ",
]


def _only(models_dir: Path) -> str:
    bundles = list_bundles(models_dir)
    assert len(bundles) == 1
    bundle = bundles[0]
    assert bundle.valid is False
    assert bundle.invalid_reason is not None
    return bundle.invalid_reason


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text("utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), "utf-8")


# --- the seven reasons, each alone ------------------------------------------


def test_valid_bundle(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("run-1", created_at="2026-02-19T01:30:00+00:00")
    [bundle] = list_bundles(models_dir)
    assert bundle.valid is True
    assert bundle.invalid_reason is None
    assert bundle.model_id == "run-1"
    assert bundle.path == path
    assert bundle.metadata is not None
    assert bundle.metrics is not None
    assert bundle.created_at == datetime(2026, 2, 19, 1, 30, tzinfo=UTC)


def test_missing_metadata(models_dir: Path, make_bundle: BundleFactory) -> None:
    (make_bundle("b") / "metadata.json").unlink()
    assert _only(models_dir) == "missing metadata.json"


def test_missing_metrics(models_dir: Path, make_bundle: BundleFactory) -> None:
    (make_bundle("b") / "metrics.json").unlink()
    assert _only(models_dir) == "missing metrics.json"


@pytest.mark.parametrize(
    "content", [b"", b"{", b"not json", b"\xff\xfe\x00", b'{"a": 1} trailing', b"[" * 100_000]
)
def test_metadata_parse_error(models_dir: Path, make_bundle: BundleFactory, content: bytes) -> None:
    (make_bundle("b") / "metadata.json").write_bytes(content)
    assert _only(models_dir).startswith("metadata.json parse error: ")


@pytest.mark.parametrize(
    "content",
    [
        b"[]",
        b"42",
        b"null",
        b"{}",
        b'{"schema_version": "v1"}',
    ],
)
def test_metadata_validation_error(
    models_dir: Path, make_bundle: BundleFactory, content: bytes
) -> None:
    (make_bundle("b") / "metadata.json").write_bytes(content)
    assert _only(models_dir).startswith("metadata.json validation error: ")


def test_metadata_validation_error_wrong_field_type(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    _edit_json(make_bundle("b") / "metadata.json", label_set="Build")
    assert _only(models_dir).startswith("metadata.json validation error: ")


@pytest.mark.parametrize("content", [b"", b"{,}", b"\x80abc", b"{" * 50_000])
def test_metrics_parse_error(models_dir: Path, make_bundle: BundleFactory, content: bytes) -> None:
    (make_bundle("b") / "metrics.json").write_bytes(content)
    assert _only(models_dir).startswith("metrics.json parse error: ")


@pytest.mark.parametrize(
    "changes",
    [
        {"macro_f1": 1.5},
        {"weighted_f1": -0.1},
        {"macro_f1": "0.8"},
        {"confusion_matrix": [[1]]},
        {"confusion_matrix": [[-1] * 8] * 8},
        {"confusion_matrix": [[0.5] * 8] * 8},
        {"label_names": ["Build"] * 8},
    ],
    ids=["f1>1", "f1<0", "f1-str", "not-NxN", "negative-cell", "float-cell", "dup-labels"],
)
def test_metrics_validation_error(
    models_dir: Path, make_bundle: BundleFactory, changes: dict[str, object]
) -> None:
    _edit_json(make_bundle("b") / "metrics.json", **changes)
    assert _only(models_dir).startswith("metrics.json validation error: ")


def test_metrics_nan_is_a_contract_violation(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("b") / "metrics.json"
    path.write_text(path.read_text("utf-8").replace('"macro_f1": ', '"macro_f1": NaN, "x": '))
    reason = _only(models_dir)
    # Python's json accepts NaN, a strict parser does not: either way the bundle is out.
    assert reason.startswith(("metrics.json validation error: ", "metrics.json parse error: "))


@pytest.mark.parametrize("created_at", ["yesterday", "2026-13-01T00:00:00", "", "01/02/2026"])
def test_created_at_parse_error(
    models_dir: Path, make_bundle: BundleFactory, created_at: str
) -> None:
    make_bundle("b", created_at=created_at)
    assert _only(models_dir).startswith("created_at parse error: ")


def test_created_at_without_offset_is_utc(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("b", created_at="2026-02-19T01:30:00")
    [bundle] = list_bundles(models_dir)
    assert bundle.created_at == datetime(2026, 2, 19, 1, 30, tzinfo=UTC)
    assert bundle.created_at is not None and bundle.created_at.utcoffset() == timedelta(0)


def test_created_at_keeps_its_offset(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("b", created_at="2026-02-19T03:30:00+02:00")
    [bundle] = list_bundles(models_dir)
    assert bundle.created_at == datetime(2026, 2, 19, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    assert bundle.metadata is not None
    assert bundle.metadata.created_at == "2026-02-19T03:30:00+02:00"  # raw string kept


# --- precedence ---------------------------------------------------------------


def test_precedence_missing_both_reports_metadata_first(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").unlink()
    (bundle / "metrics.json").unlink()
    assert _only(models_dir) == "missing metadata.json"


def test_precedence_missing_metrics_before_bad_metadata(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").write_text("not json")
    (bundle / "metrics.json").unlink()
    assert _only(models_dir) == "missing metrics.json"


def test_precedence_missing_metrics_before_invalid_metadata(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").write_text("{}")
    (bundle / "metrics.json").unlink()
    assert _only(models_dir) == "missing metrics.json"


def test_precedence_metadata_parse_before_metrics_parse(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").write_text("{")
    (bundle / "metrics.json").write_text("{")
    assert _only(models_dir).startswith("metadata.json parse error: ")


def test_precedence_metadata_validation_before_metrics_parse(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").write_text("{}")
    (bundle / "metrics.json").write_text("{")
    assert _only(models_dir).startswith("metadata.json validation error: ")


def test_precedence_metrics_parse_before_created_at(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b", created_at="garbage")
    (bundle / "metrics.json").write_text("nope")
    assert _only(models_dir).startswith("metrics.json parse error: ")


def test_precedence_metrics_validation_before_created_at(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b", created_at="garbage")
    _edit_json(bundle / "metrics.json", macro_f1=7)
    assert _only(models_dir).startswith("metrics.json validation error: ")


def test_each_reason_prefix_is_produced(models_dir: Path, make_bundle: BundleFactory) -> None:
    """One registry holding one bundle per reason: the reasons are exactly the seven prefixes."""
    (make_bundle("r1") / "metadata.json").unlink()
    (make_bundle("r2") / "metrics.json").unlink()
    (make_bundle("r3") / "metadata.json").write_text("{")
    (make_bundle("r4") / "metadata.json").write_text("{}")
    (make_bundle("r5") / "metrics.json").write_text("{")
    (make_bundle("r6") / "metrics.json").write_text("{}")
    make_bundle("r7", created_at="never")
    reasons = [b.invalid_reason or "" for b in list_bundles(models_dir)]
    for reason, prefix in zip(reasons, REASON_PREFIXES, strict=True):
        assert reason.startswith(prefix), (reason, prefix)


# --- what the scan sees -------------------------------------------------------


def test_missing_models_dir_is_empty(tmp_path: Path) -> None:
    assert list_bundles(tmp_path / "nope") == []


def test_models_dir_that_is_a_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "models"
    path.write_text("not a directory")
    assert list_bundles(path) == []


def test_empty_models_dir(models_dir: Path) -> None:
    assert list_bundles(models_dir) == []


def test_plain_files_and_dot_directories_are_ignored(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("real")
    make_bundle(".staging-real2")
    make_bundle(".hidden")
    (models_dir / ".taskclf.lock").write_text("")
    (models_dir / "active.json").write_text("{}")
    (models_dir / "notes.txt").write_text("hello")
    (models_dir / "index.json").write_text("{}")
    assert [b.model_id for b in list_bundles(models_dir)] == ["real"]


def test_every_subdirectory_is_a_bundle_even_empty(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("good")
    (models_dir / "empty").mkdir()
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    assert set(bundles) == {"good", "empty"}
    assert bundles["empty"].invalid_reason == "missing metadata.json"


def test_sorted_by_model_id(models_dir: Path, make_bundle: BundleFactory) -> None:
    names = ["b", "a", "C", "2026-02-19_013000_run-0042", "z_1", "aa", "run-10", "run-9"]
    for seed, name in enumerate(names):
        make_bundle(name, seed=seed)
    assert [b.model_id for b in list_bundles(models_dir)] == sorted(names)


def test_paths_are_absolute_even_for_relative_models_dir(
    models_dir: Path, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bundle("run")
    monkeypatch.chdir(models_dir.parent)
    [bundle] = list_bundles("models")
    assert bundle.path.is_absolute()
    assert bundle.path == models_dir / "run"


def test_accepts_str_and_pathlike(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run")
    assert list_bundles(str(models_dir)) == list_bundles(models_dir)


def test_extra_keys_in_files_are_ignored(models_dir: Path, make_bundle: BundleFactory) -> None:
    bundle = make_bundle("b", extra_metadata={"future": {"deep": [1, 2]}})
    _edit_json(bundle / "metrics.json", per_class={"Build": 0.9})
    [scanned] = list_bundles(models_dir)
    assert scanned.valid is True


# --- hostile contents: the scan never raises --------------------------------


def test_directory_where_a_file_should_be(models_dir: Path, make_bundle: BundleFactory) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").unlink()
    (bundle / "metadata.json").mkdir()
    assert _only(models_dir).startswith("metadata.json parse error: ")


def test_directory_where_metrics_should_be(models_dir: Path, make_bundle: BundleFactory) -> None:
    bundle = make_bundle("b")
    (bundle / "metrics.json").unlink()
    (bundle / "metrics.json").mkdir()
    assert _only(models_dir).startswith("metrics.json parse error: ")


def test_fifo_named_metadata_json_does_not_hang(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").unlink()
    os.mkfifo(bundle / "metadata.json")
    assert _only(models_dir).startswith("metadata.json parse error: ")


def test_fifo_named_metrics_json_does_not_hang(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metrics.json").unlink()
    os.mkfifo(bundle / "metrics.json")
    assert _only(models_dir).startswith("metrics.json parse error: ")


def test_non_utf8_metadata(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("b") / "metadata.json"
    path.write_bytes(path.read_bytes().replace(b'"real"', b'"r\xe9al"'))
    assert _only(models_dir).startswith("metadata.json parse error: ")


def test_utf8_bom_or_latin1_metrics(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("b") / "metrics.json"
    path.write_bytes(path.read_bytes().replace(b'"Build"', b'"B\xfcild"'))
    assert _only(models_dir).startswith("metrics.json parse error: ")


def test_deeply_nested_json_is_a_parse_error(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("b") / "metadata.json"
    depth = 200_000
    path.write_text('{"params": ' + "[" * depth + "]" * depth + "}")
    assert _only(models_dir).startswith("metadata.json parse error: ")


def test_deeply_nested_valid_json_in_an_ignored_field(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    depth = 5_000
    _edit_json(bundle / "metrics.json")  # normalise formatting
    text = (bundle / "metrics.json").read_text("utf-8")
    (bundle / "metrics.json").write_text(text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}")
    # Either accepted (extra key ignored) or reported; never an exception.
    [scanned] = list_bundles(models_dir)
    assert scanned.valid or (scanned.invalid_reason or "").startswith("metrics.json parse error")


def test_deep_directory_nesting_inside_a_bundle(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    deep = bundle / "artifacts"
    for i in range(60):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "metadata.json").write_text("{")
    [scanned] = list_bundles(models_dir)
    assert scanned.valid is True  # only the bundle's own top-level files are read


def test_huge_metadata_is_reported_without_reading_it(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("b") / "metadata.json"
    # Sparse: 64 GiB of apparent size costs nothing on disk, but an implementation
    # that read it whole would exhaust memory instead of passing.
    with path.open("r+b") as handle:
        try:
            handle.truncate(64 * 1024**3)
        except OSError:  # a filesystem with a smaller file-size limit
            handle.truncate(1024**3)
    reason = _only(models_dir)
    assert reason.startswith("metadata.json parse error: ")
    assert "limit" in reason or "large" in reason


def test_metrics_just_over_the_cap_is_a_parse_error(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("b") / "metrics.json"
    with path.open("r+b") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert _only(models_dir).startswith("metrics.json parse error: ")


def test_file_of_exactly_the_cap_is_read(models_dir: Path, make_bundle: BundleFactory) -> None:
    assert MAX_FILE_BYTES == 16 * 1024 * 1024
    path = make_bundle("b") / "metrics.json"
    data = path.read_bytes().rstrip()
    path.write_bytes(data + b" " * (MAX_FILE_BYTES - len(data)))
    assert path.stat().st_size == MAX_FILE_BYTES
    [bundle] = list_bundles(models_dir)
    assert bundle.valid is True


def test_dangling_symlink_metadata_reads_as_missing(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = make_bundle("b")
    (bundle / "metadata.json").unlink()
    (bundle / "metadata.json").symlink_to(bundle / "nowhere.json")
    assert _only(models_dir) == "missing metadata.json"


def test_unreadable_file(models_dir: Path, make_bundle: BundleFactory) -> None:
    """chmod 000 does not stop root, so as root scan from a child without DAC capabilities."""
    bundle = make_bundle("b")
    (bundle / "metadata.json").chmod(0o000)
    if os.geteuid() != 0:
        assert _only(models_dir).startswith("metadata.json parse error: ")
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    script = (
        "import json; from taskclf.model_registry import list_bundles; "
        f"print(json.dumps([b.invalid_reason for b in list_bundles({str(models_dir)!r})]))"
    )
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(
        [setpriv, "--bounding-set", drop, "--inh-caps", drop, "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0 and "setpriv" in result.stderr:
        pytest.skip(f"setpriv refused: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    [reason] = json.loads(result.stdout)
    assert reason.startswith("metadata.json parse error: ")
    assert "ermission" in reason


def test_bundle_removed_before_read_yields_none(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("b")
    shutil.rmtree(path)
    assert read_bundle(path) is None


def test_bundle_whose_files_vanish_is_a_clean_invalid_entry(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("b")
    (path / "metadata.json").unlink()
    bundle = read_bundle(path)
    assert bundle is not None
    assert bundle.invalid_reason == "missing metadata.json"


def test_read_bundle_of_a_plain_file_does_not_raise(models_dir: Path) -> None:
    path = models_dir / "file"
    path.write_text("x")
    assert read_bundle(path) is None


def test_many_hostile_bundles_in_one_scan(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("ok", seed=1)
    (make_bundle("a-dir") / "metadata.json").unlink()
    (models_dir / "a-dir" / "metadata.json").mkdir()
    os.mkfifo(make_bundle("fifo") / "pipe")  # a FIFO not named like a registry file
    (make_bundle("binary") / "metrics.json").write_bytes(bytes(range(256)))
    (models_dir / "empty").mkdir()
    bundles = list_bundles(models_dir)
    assert [b.model_id for b in bundles] == ["a-dir", "binary", "empty", "fifo", "ok"]
    assert {b.model_id for b in bundles if b.valid} == {"fifo", "ok"}


def test_scan_while_bundles_appear_and_disappear(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    """Bundles renamed in, deleted and half-written while scans run: never an exception."""
    import threading

    source = make_bundle(".template", seed=3)
    make_bundle("stable", seed=1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            i = 0
            while not stop.is_set():
                staged = models_dir / f".staging-{i}"
                shutil.copytree(source, staged)
                os.rename(staged, models_dir / f"run-{i}")  # promoted
                half = models_dir / f"half-{i}"
                half.mkdir()
                (half / "metadata.json").write_bytes((source / "metadata.json").read_bytes())
                shutil.rmtree(models_dir / f"run-{i}")  # deleted
                shutil.rmtree(half)
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    allowed = ("missing metadata.json", "missing metrics.json")
    try:
        for _ in range(150):
            bundles = list_bundles(models_dir)
            ids = [b.model_id for b in bundles]
            assert ids == sorted(ids)
            assert "stable" in ids
            for bundle in bundles:
                reason = bundle.invalid_reason or ""
                if bundle.model_id.startswith("half-"):  # caught mid-write: any clean reason
                    assert reason.startswith(tuple(REASON_PREFIXES)), bundle
                else:
                    assert bundle.valid or reason.startswith(allowed), bundle
    finally:
        stop.set()
        worker.join()
    assert errors == []


# --- what a scan computes while reading, against what the models say --------------


@settings(max_examples=40, deadline=None)
@given(
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
    microsecond=st.integers(min_value=0, max_value=999_999),
    macro_f1=st.floats(min_value=0.0, max_value=1.0),
    weighted_f1=st.floats(min_value=0.0, max_value=1.0),
    labels=st.permutations(["Build", "Debug", "Review", "Write", "Meet", "BreakIdle"]),
    version=st.sampled_from(["v1", "v2", "v3"]),
    naive=st.booleans(),
)
def test_a_scans_facts_and_models_equal_those_of_the_plain_bundle(
    offset_minutes: int,
    microsecond: int,
    macro_f1: float,
    weighted_f1: float,
    labels: list[str],
    version: str,
    naive: bool,
) -> None:
    """The facts a scan carries (selection.valid_facts) are bundle_facts of the same bundle.

    And its models (copies sharing their class's dict keys) equal what pydantic
    parses from the files, fields-sets and dumps included.
    """
    created = datetime(2026, 3, 1, 12, 30, 5, microsecond)
    if not naive:
        created = created.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        path = write_bundle(
            models / "run-1",
            schema_version=version,
            label_set=labels,
            created_at=created.isoformat(),
            macro_f1=macro_f1,
            weighted_f1=weighted_f1,
        )
        [bundle] = list_bundles(models)
        assert bundle.valid, bundle.invalid_reason
        plain = ModelBundle.model_construct(**{name: getattr(bundle, name) for name in FIELDS})
        carried = cached_facts(bundle)
        assert carried is not None
        assert carried == bundle_facts(plain)
        metadata = ModelMetadata.model_validate_json((path / "metadata.json").read_bytes())
        metrics = BundleMetrics.model_validate_json((path / "metrics.json").read_bytes())
        for model, reference in ((bundle.metadata, metadata), (bundle.metrics, metrics)):
            assert model == reference
            assert type(model) is type(reference)
            assert model.model_fields_set == reference.model_fields_set
            assert model.model_dump_json() == reference.model_dump_json()
            assert list(vars(model)) == list(vars(reference))


# --- the capped read every bundle file goes through -------------------------------


@pytest.mark.parametrize("size", [0, 1, 9, 10, 4096, 70_000])
def test_capped_read_returns_the_whole_file_up_to_the_cap(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    data, info = read_capped_stat(path, cap=70_000)
    assert data == path.read_bytes()
    assert info.st_size == size
    if size > 10:
        with pytest.raises(RegistryFileError, match="larger than the 10 byte limit"):
            read_capped_stat(path, cap=10)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_capped_read_reads_on_past_a_size_that_was_only_a_hint() -> None:
    """A file with more bytes than fstat reported (here a /proc file of size 0) is read whole."""
    data, info = read_capped_stat("/proc/self/status")
    assert info.st_size == 0
    assert data.startswith(b"Name:") and data.endswith(b"\n") and b"\nPid:" in data
    with pytest.raises(RegistryFileError, match="larger than the 16 byte limit"):
        read_capped_stat("/proc/self/status", cap=16)
