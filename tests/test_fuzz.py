"""Hostile inputs: every reader survives whatever is on disk.

Random bytes, random JSON values, truncated and mutated files, deep
nesting, huge numbers, odd file types and files beyond the 16 MiB read cap
are fed to every reader (``list_bundles``, ``find_best_model``,
``read_active``, ``read_active_history``, ``read_index_cache``,
``resolve_active_model``, ``promote_bundle``). Nothing may raise except
the documented errors, and every bundle gets a reason (ranked, or excluded
with a non-empty reason).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskclf.model_registry import (
    PromotionError,
    RegistryFileError,
    find_best_model,
    list_bundles,
    promote_bundle,
    read_active,
    read_active_history,
    read_index_cache,
    resolve_active_model,
    write_active_atomic,
    write_index_cache,
)
from taskclf.model_registry._fs import MAX_FILE_BYTES
from taskclf.model_registry.index import INDEX_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE, locate_pointed_bundle
from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE
from taskclf.model_registry.verify import verify_registry
from taskclf.samples import write_bundle

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON values, including what ``json.dumps`` writes for NaN/Infinity (not strict JSON).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _template(kind: str) -> dict[str, Any]:
    """A valid document of each kind, to mutate."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        bundle = write_bundle(root / "a", accuracy=0.8)
        metadata = json.loads((bundle / METADATA_FILE).read_bytes())
        metrics = json.loads((bundle / METRICS_FILE).read_bytes())
        pointer = write_active_atomic(root, list_bundles(root)[0])
    docs: dict[str, dict[str, Any]] = {
        "metadata": metadata,
        "metrics": metrics,
        "pointer": pointer.model_dump(mode="json"),
        "history": {"at": pointer.selected_at, "old": None, "new": pointer.model_dump(mode="json")},
        "index": {
            "generated_at": pointer.selected_at,
            "schema_hash": metadata["schema_hash"],
            "policy_version": 1,
            "ranked": [],
            "excluded": [],
            "best_model_id": None,
        },
    }
    return docs[kind]


TEMPLATES = {k: _template(k) for k in ("metadata", "metrics", "pointer", "history", "index")}


@st.composite
def hostile_document(draw: st.DrawFn, kind: str) -> bytes:
    """Bytes for a file that should hold a ``kind`` document."""
    valid = json.dumps(TEMPLATES[kind]).encode()
    how = draw(
        st.sampled_from(
            ["bytes", "json", "truncated", "mutated", "dropped", "deep", "number", "bad-utf8"]
        )
    )
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "json":
        return json.dumps(draw(json_values)).encode()
    if how == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if how == "deep":
        depth = draw(st.sampled_from([100, 1_000, 100_000]))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        return opener * depth
    if how == "number":
        digits = draw(st.integers(300, 5000))
        return (
            b'{"macro_f1": 1' + b"0" * digits + b', "weighted_f1": 1e' + str(digits).encode() + b"}"
        )
    if how == "bad-utf8":
        cut = draw(st.integers(0, len(valid)))
        return (
            valid[:cut]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            + valid[cut:]
        )
    doc = dict(TEMPLATES[kind])
    key = draw(st.sampled_from(sorted(doc)))
    if how == "dropped":
        del doc[key]
    else:
        doc[key] = draw(json_values)
    return json.dumps(doc).encode()


@contextmanager
def registry() -> Iterator[Path]:
    # A fresh directory per example (function-scoped fixtures are shared across examples).
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        root.mkdir()
        yield root


def assert_every_bundle_has_a_reason(root: Path) -> None:
    bundles = list_bundles(root)
    for bundle in bundles:
        assert bundle.valid or bundle.invalid_reason
    report = find_best_model(root)
    ranked = [b.model_id for b in report.ranked]
    excluded = [e.model_id for e in report.excluded]
    assert sorted(ranked + excluded) == sorted(b.model_id for b in bundles)
    assert all(e.reason for e in report.excluded)


@FUZZ
@given(metadata=hostile_document("metadata"), metrics=hostile_document("metrics"))
def test_scan_and_selection_survive_hostile_bundle_files(metadata: bytes, metrics: bytes) -> None:
    with registry() as root:
        write_bundle(root / "good", accuracy=0.7)
        bad = write_bundle(root / "bad", accuracy=0.9)
        (bad / METADATA_FILE).write_bytes(metadata)
        (bad / METRICS_FILE).write_bytes(metrics)
        assert_every_bundle_has_a_reason(root)
        by_id = {b.model_id: b for b in list_bundles(root)}
        assert by_id["good"].valid
        bundle, _ = resolve_active_model(root)
        # A valid bundle exists, so a reader always gets an answer.
        assert bundle is not None


@FUZZ
@given(
    pointer=hostile_document("pointer"),
    history=st.lists(hostile_document("history"), max_size=4),
    index=hostile_document("index"),
)
def test_registry_file_readers_never_raise(
    pointer: bytes, history: list[bytes], index: bytes
) -> None:
    with registry() as root:
        write_bundle(root / "a", accuracy=0.8)
        (root / ACTIVE_FILE).write_bytes(pointer)
        (root / HISTORY_FILE).write_bytes(b"\n".join(history))
        (root / INDEX_FILE).write_bytes(index)
        read_active(root)
        assert isinstance(read_active_history(root), list)
        read_index_cache(root)
        bundle, _ = resolve_active_model(root)
        assert bundle is not None
        assert bundle.model_id == "a"


@FUZZ
@given(
    model_dir=st.text(max_size=300)
    | st.sampled_from(["\x00", "models/\x00", "a" * 5000, "/" * 3, ".."])
)
def test_any_pointer_model_dir_is_located_or_refused(model_dir: str) -> None:
    with registry() as root:
        write_bundle(root / "a", accuracy=0.8)
        located = locate_pointed_bundle(root, model_dir)
        assert located is None or located.parent == root
        doc = dict(TEMPLATES["pointer"], model_dir=model_dir)
        (root / ACTIVE_FILE).write_text(json.dumps(doc), encoding="utf-8", errors="surrogatepass")
        bundle, _ = resolve_active_model(root)
        assert bundle is not None
        assert bundle.model_id == "a"


@FUZZ
@given(metadata=hostile_document("metadata"), metrics=hostile_document("metrics"))
def test_promotion_refuses_or_accepts_a_hostile_candidate(metadata: bytes, metrics: bytes) -> None:
    with registry() as root:
        write_bundle(root / "a", accuracy=0.5)
        candidate = write_bundle(root.parent / "cand", accuracy=0.9)
        (candidate / METADATA_FILE).write_bytes(metadata)
        (candidate / METRICS_FILE).write_bytes(metrics)
        try:
            result = promote_bundle(candidate, root)
        except PromotionError as exc:
            assert exc.reason
            assert not (root / "cand").exists()
        else:
            assert result.bundle.valid
        assert not [n for n in os.listdir(root) if n.startswith(".staging-")]
        assert_every_bundle_has_a_reason(root)


# --- odd file types and sizes, one by one ---------------------------------------------


def _plant(path: Path, what: str) -> None:
    if what == "directory":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "dangling-symlink":
        path.symlink_to(path.parent / "nowhere")
    elif what == "beyond-cap":
        with open(path, "wb") as out:
            out.truncate(MAX_FILE_BYTES + 1)  # sparse: cheap to create
    elif what == "empty":
        path.touch()


ODD = ["directory", "fifo", "dangling-symlink", "beyond-cap", "empty"]


@pytest.mark.parametrize("what", ODD)
@pytest.mark.parametrize("name", [METADATA_FILE, METRICS_FILE])
def test_odd_bundle_files_become_reasons(models_dir: Path, name: str, what: str) -> None:
    write_bundle(models_dir / "good", accuracy=0.7)
    bad = write_bundle(models_dir / "bad", accuracy=0.9)
    (bad / name).unlink()
    _plant(bad / name, what)
    by_id = {b.model_id: b for b in list_bundles(models_dir)}
    assert not by_id["bad"].valid
    reason = by_id["bad"].invalid_reason or ""
    if what == "dangling-symlink":
        assert reason == f"missing {name}"
    else:
        assert reason.startswith(f"{name} parse error: ")
    if what == "beyond-cap":
        assert "limit" in reason
    assert_every_bundle_has_a_reason(models_dir)


@pytest.mark.parametrize("what", ODD)
@pytest.mark.parametrize("name", [ACTIVE_FILE, HISTORY_FILE, INDEX_FILE])
def test_odd_registry_files_read_as_absent(
    models_dir: Path, name: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_bundle(models_dir / "a", accuracy=0.8)
    _plant(models_dir / name, what)
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        assert read_active(models_dir) is None
        assert read_active_history(models_dir) == []
        assert read_index_cache(models_dir) is None
        bundle, _ = resolve_active_model(models_dir)
    assert bundle is not None
    assert bundle.model_id == "a"


def test_non_utf8_bundle_name_is_skipped_not_fatal(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Such a name cannot appear in active.json or index.json: it is ignored, with a warning."""
    write_bundle(models_dir / "a", accuracy=0.8)
    write_bundle(Path(os.fsdecode(os.fsencode(models_dir) + b"/bad\xff")), accuracy=0.9)
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        assert [b.model_id for b in list_bundles(models_dir)] == ["a"]
        bundle, _ = resolve_active_model(models_dir)
    assert "not valid UTF-8" in caplog.text
    assert bundle is not None
    assert bundle.model_id == "a"
    candidate = write_bundle(tmp_path / "cand", accuracy=0.95)
    assert promote_bundle(candidate, models_dir).active_updated
    # A candidate with such a name is refused rather than promoted out of sight.
    odd = write_bundle(Path(os.fsdecode(os.fsencode(tmp_path) + b"/odd\xff")), accuracy=0.99)
    with pytest.raises(PromotionError, match="UTF-8"):
        promote_bundle(odd, models_dir)
    assert promote_bundle(odd, models_dir, name="odd").active_updated


def test_history_beyond_the_cap_reads_its_newest_entries(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A long-lived registry's history may outgrow 16 MiB; its tail is what matters."""
    write_bundle(models_dir / "a", accuracy=0.8)
    write_bundle(models_dir / "b", accuracy=0.9)
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    first = write_active_atomic(models_dir, bundles["a"])
    line = (models_dir / HISTORY_FILE).read_bytes()
    copies = MAX_FILE_BYTES // len(line) + 2
    with open(models_dir / HISTORY_FILE, "ab") as out:
        out.write(line * copies)
    assert os.path.getsize(models_dir / HISTORY_FILE) > MAX_FILE_BYTES
    last = write_active_atomic(models_dir, bundles["b"])
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        entries = read_active_history(models_dir)
    assert entries[-1].new == last
    assert entries[0].new == first
    # Only whole lines, only from the last 16 MiB.
    assert MAX_FILE_BYTES // len(line) - 1 <= len(entries) <= MAX_FILE_BYTES // len(line) + 1
    assert "larger than the read limit" in caplog.text
    assert "unparseable" not in caplog.text
    # verify checks the same tail: a big history is a remark, not a broken registry.
    report = verify_registry(models_dir)
    codes = {f.code: f.severity for f in report.findings}
    assert codes.get("history-large") == "warning"
    assert "history-unreadable" not in codes
    assert "history-pointer-mismatch" not in codes


def test_non_utf8_registry_directory_reads_and_refuses_writes_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The pointer and index record the registry's name/path, which must be UTF-8."""
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/models\xff"))
    write_bundle(root / "a", accuracy=0.8)
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        bundle, report = resolve_active_model(root)
    assert bundle is not None
    assert bundle.model_id == "a"
    assert report is not None
    assert "not valid UTF-8" in caplog.text
    with pytest.raises(RegistryFileError, match="not valid UTF-8"):
        write_index_cache(root, report)
    with pytest.raises(RegistryFileError, match="not valid UTF-8"):
        write_active_atomic(root, bundle)
    assert set(os.listdir(root)) <= {".taskclf.lock", "a"}


def test_registry_path_with_a_nul_byte_reads_as_empty() -> None:
    """A path no file can have (embedded NUL) is an unreadable registry, never a ValueError."""
    hostile = "/tmp/registry\x00models"
    assert list_bundles(hostile) == []
    assert read_active(hostile) is None
    assert read_index_cache(hostile) is None
    assert read_active_history(hostile) == []
    report = find_best_model(hostile)
    assert report.best is None and report.ranked == [] and report.excluded == []
    assert resolve_active_model(hostile) == (None, report)
