"""Sustained concurrent load, and the guarantees that hold without the lock.

The soak runs several processes at once for ``TASKCLF_SOAK_SECONDS``
(default 3; e.g. ``TASKCLF_SOAK_SECONDS=30`` for a local run at 10x):
resolvers, pointer writers, promoters, index writers and a pruner. Afterwards:
zero unexpected errors, every resolve got a bundle (a valid one always
exists), the history is a whole, unbroken chain ending at the pointer,
every promoted bundle is present and valid, and nothing is left behind.

The second test bypasses the registry lock entirely (as on a filesystem
where ``flock`` silently does nothing) and calls the ``_fs`` primitives
from several processes: the pointer is still always whole (unique temp
name + rename) and every history line is still whole (one ``O_APPEND``
write per line). Only the chain ordering needs the lock.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from conftest import prune_just_before_locking
from taskclf.model_registry import (
    list_bundles,
    read_active,
    resolve_active_model,
    write_active_atomic,
)
from taskclf.model_registry._fs import is_temp_name
from taskclf.model_registry.models import ActiveHistoryEntry
from taskclf.model_registry.pointer import HISTORY_FILE
from taskclf.model_registry.promotion import STAGING_PREFIX
from taskclf.model_registry.verify import verify_registry
from taskclf.samples import write_bundle

if TYPE_CHECKING:
    import pytest

SOAK_SECONDS = float(os.environ.get("TASKCLF_SOAK_SECONDS", "3"))

WORKER = textwrap.dedent(
    """
    import json, os, random, sys, tempfile, time, traceback
    from pathlib import Path
    from taskclf.model_registry import (
        BundleRejectedError, execute_prune, find_best_model, list_bundles, plan_prune,
        promote_bundle, read_active_history, resolve_active_model, write_active_atomic,
        write_index_cache,
    )
    from taskclf.samples import write_bundle

    kind, root, seconds, seed = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    counts = {"ops": 0, "unanswered": 0}
    errors, promoted, pruned = [], [], []
    scratch = Path(tempfile.mkdtemp(prefix="soak-candidates-"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if kind == "resolve":
                bundle, _ = resolve_active_model(root)
                if bundle is None or not bundle.valid:
                    counts["unanswered"] += 1
                read_active_history(root)
            elif kind == "pointer":
                valid = [b for b in list_bundles(root) if b.valid]
                try:
                    write_active_atomic(root, rng.choice(valid), reason="soak")
                except BundleRejectedError as exc:
                    # Documented refusal: the pick was pruned after our scan.
                    if "does not exist" not in exc.reason:
                        raise
                    counts["rejected-pruned"] = counts.get("rejected-pruned", 0) + 1
            elif kind == "promote":
                name = f"p{seed}-{counts['ops']:05d}"
                candidate = write_bundle(scratch / name, accuracy=rng.uniform(0.3, 0.99),
                                         seed=rng.randrange(50_000))
                promote_bundle(candidate, root, move=rng.random() < 0.5)
                promoted.append(name)
            elif kind == "index":
                write_index_cache(root, find_best_model(root))
            elif kind == "prune":
                executed = execute_prune(plan_prune(root, keep=3, keep_history=2))
                pruned.extend(d.model_id for d in executed.to_delete)
            counts["ops"] += 1
        except Exception as exc:
            errors.append(f"{kind}: {type(exc).__name__}: {exc}\\n{traceback.format_exc()}")
    print(json.dumps({"kind": kind, "counts": counts, "errors": errors, "promoted": promoted,
                      "pruned": pruned}))
    """
)

KINDS = ["resolve", "resolve", "pointer", "pointer", "promote", "index", "prune"]


def test_soak_concurrent_resolve_write_promote(models_dir: Path) -> None:
    for i in range(4):
        write_bundle(models_dir / f"seed-{i}", accuracy=0.5 + i / 10, seed=i)
    write_active_atomic(models_dir, list_bundles(models_dir)[0])

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, str(models_dir), str(SOAK_SECONDS), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, kind in enumerate(KINDS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=SOAK_SECONDS + 300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    totals: dict[str, int] = {}
    for result in results:
        totals[result["kind"]] = totals.get(result["kind"], 0) + result["counts"]["ops"]
    pruned_count = sum(len(r["pruned"]) for r in results)
    skip = {"ops", "unanswered"}
    extra = {k: v for r in results for k, v in r["counts"].items() if k not in skip}
    print(f"\nsoak {SOAK_SECONDS:g}s ops: {totals}; pruned bundles: {pruned_count}; {extra}")
    errors = [e for r in results for e in r["errors"]]
    assert errors == []
    assert all(r["counts"]["unanswered"] == 0 for r in results)
    assert all(totals[kind] > 0 for kind in set(KINDS))

    # Every promoted bundle is present and valid, unless prune deleted it.
    promoted = {name for r in results for name in r["promoted"]}
    pruned = {name for r in results for name in r["pruned"]}
    valid = {b.model_id for b in list_bundles(models_dir) if b.valid}
    assert promoted - pruned <= valid
    assert not pruned & valid

    # The history: every line whole, an unbroken chain, ending at the pointer.
    lines = (models_dir / HISTORY_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b""
    entries = [ActiveHistoryEntry.model_validate_json(line) for line in lines[:-1]]
    # A pointer write refused because prune took its pick counts as an op but writes nothing.
    refused = sum(r["counts"].get("rejected-pruned", 0) for r in results)
    assert len(entries) >= 1 + totals["pointer"] - refused
    for previous, entry in itertools.pairwise(entries):
        assert entry.old == previous.new
    assert entries[-1].new == read_active(models_dir)

    leftovers = [
        n for n in os.listdir(models_dir) if is_temp_name(n) or n.startswith(STAGING_PREFIX)
    ]
    assert leftovers == []
    report = verify_registry(models_dir)
    assert [f.code for f in report.findings if f.severity == "error"] == []


LOCKLESS_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskclf.model_registry._fs import append_line, atomic_write

    root, writer, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for i in range(count):
        # Payloads of very different sizes, so a torn or mixed write would show.
        payload = f'{{"writer": {writer}, "i": {i}, "pad": "{"x" * (i % 7 * 900)}"}}'.encode()
        atomic_write(root / "active.json", payload)
        append_line(root / "active_history.jsonl", payload)
    """
)

LOCKLESS_READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from taskclf.model_registry._fs import read_capped

    root, count = Path(sys.argv[1]), int(sys.argv[2])
    seen = 0
    while seen < count:
        try:
            doc = json.loads(read_capped(root / "active.json"))
        except FileNotFoundError:
            continue
        assert set(doc) == {"writer", "i", "pad"}, doc
        seen += 1
    print(seen)
    """
)


def test_without_the_lock_pointer_and_history_lines_stay_whole(tmp_path: Path) -> None:
    """What holds where ``flock`` is a no-op: no lock is taken at all here."""
    writers, count = 3, 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOCKLESS_WRITER, str(tmp_path), str(w), str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", LOCKLESS_READER, str(tmp_path), "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    assert int(out) == 150

    final = json.loads((tmp_path / "active.json").read_bytes())
    assert final["i"] == count - 1
    lines = (tmp_path / "active_history.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    # Without the lock an appender may sample the file's size while another
    # append is half copied in and add a spurious newline before its own line:
    # an empty line, which readers skip. No line is ever split or interleaved.
    docs = [json.loads(line) for line in lines[:-1] if line]
    assert sorted((d["writer"], d["i"]) for d in docs) == [
        (w, i) for w in range(writers) for i in range(count)
    ]
    assert [n for n in os.listdir(tmp_path) if is_temp_name(n)] == []


def test_resolve_survives_its_best_being_pruned_before_the_repair(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's best is pruned by another process between the scan and the lock.

    The interleaving is forced (the prune runs, for real, in a child process just
    before resolution takes the lock); before the fix the reader raised
    ``BundleRejectedError`` from the pointer write.
    """
    write_bundle(models_dir / "a", accuracy=0.7, seed=1)
    write_bundle(models_dir / "b", accuracy=0.9, seed=2)
    from taskclf.model_registry.storage import local as storage_local

    prune_just_before_locking(monkeypatch, storage_local, "b")
    bundle, report = resolve_active_model(models_dir)
    assert bundle is not None
    assert bundle.model_id == "a"
    assert report is not None
    pointer = read_active(models_dir)
    assert pointer is not None
    assert pointer.model_id == "a"
