"""A scan's memory stays within a small multiple of the bytes it reads (issue 10, item 6).

Before the bound, bundles whose ``metadata.json`` held millions of empty
JSON objects (each file under the 16 MiB read cap) took ~25x their size
in memory, and under an address-space limit the scan hung in the parser.
Real files, measured in real child processes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskclf.model_registry import list_bundles, read_bundle
from taskclf.model_registry._fs import MAX_FILE_BYTES
from taskclf.model_registry.scan import _BYTES_PER_CONTAINER
from taskclf.samples import write_bundle

# Measures its own peak RSS around one scan; prints what it saw. VmHWM rather than
# ru_maxrss, which Linux carries over from the parent (pytest) across fork and exec.
_SCAN_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from taskclf.model_registry import find_best_model
    def peak_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    if len(sys.argv) > 2:
        # Relative to what the interpreter already maps: that varies between machines.
        in_use = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        limit = in_use + int(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    before = peak_kib()
    report = find_best_model(sys.argv[1])
    after = peak_kib()
    reasons = [e.reason for e in report.excluded]
    ranked = len(report.ranked)
    print(json.dumps({"growth_kib": after - before, "reasons": reasons, "ranked": ranked}))
    """
)


def _with_params(bundle: Path, value_bytes: bytes, file: str = "metadata.json") -> int:
    """Replace ``params`` (or the metrics' ``label_names``) with raw JSON; return the file size."""
    path = bundle / file
    document = json.loads(path.read_bytes())
    key = "params" if file == "metadata.json" else "extra"
    document[key] = "PLACEHOLDER"
    head, tail = json.dumps(document).encode().split(b'"PLACEHOLDER"')
    path.write_bytes(head + value_bytes + tail)
    return path.stat().st_size


def _empty_objects_filling(cap: int) -> bytes:
    """``{"blob": [{},{},...]}``, as long as fits in ``cap`` bytes."""
    count = (cap - 64) // 3
    return b'{"blob": [' + b"{}," * count + b"{}]}"


def _pathological_registry(root: Path, bundles: int) -> int:
    """Valid bundles whose metadata.json is just under the read cap, all empty objects."""
    read = 0
    for i in range(bundles):
        bundle = write_bundle(root / f"b{i}", seed=i)
        metadata_size = (bundle / "metadata.json").stat().st_size
        blob = _empty_objects_filling(MAX_FILE_BYTES - metadata_size)
        read += _with_params(bundle, blob) + (bundle / "metrics.json").stat().st_size
    return read


def _scan_in_child(root: Path, as_limit: int | None = None) -> dict[str, object]:
    command = [sys.executable, "-c", _SCAN_CHILD, str(root)]
    if as_limit is not None:
        command.append(str(as_limit))
    # The timeout only bounds a hang (the old behaviour under RLIMIT_AS); it is no measurement.
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def pathological(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("pathological") / "models"
    root.mkdir()
    return root, _pathological_registry(root, bundles=4)


def test_a_scan_of_pathological_bundles_stays_within_a_small_multiple_of_what_it_reads(
    pathological: tuple[Path, int],
) -> None:
    root, bytes_read = pathological
    assert bytes_read > 60 * 2**20  # four files just under the 16 MiB cap

    seen = _scan_in_child(root)

    # Before the bound: ~25x. Generous: the measure is RSS, which allocator slack moves.
    assert int(seen["growth_kib"]) * 1024 <= 2 * bytes_read  # type: ignore[call-overload]
    assert seen["ranked"] == 0
    reasons = seen["reasons"]
    assert isinstance(reasons, list) and len(reasons) == 4
    for reason in reasons:
        assert reason.startswith("invalid: metadata.json parse error: ")
        assert "JSON objects and arrays" in reason


def test_a_scan_under_an_address_space_limit_finishes_with_a_reason(
    pathological: tuple[Path, int],
) -> None:
    # 512 MiB more address space: ample for one 16 MiB file, far from the
    # gigabytes parsing these files took before (which hung there).
    seen = _scan_in_child(pathological[0], as_limit=512 << 20)
    reasons = seen["reasons"]
    assert isinstance(reasons, list) and len(reasons) == 4
    assert all("metadata.json parse error: " in reason for reason in reasons)


def test_files_the_address_space_limit_cannot_hold_become_reasons_not_a_crash(
    tmp_path: Path,
) -> None:
    # As dense as the bound still parses: ~9x their size once parsed and kept, so the
    # limit runs out part way. pydantic-core aborts the process when an allocation
    # fails under RLIMIT_AS; the scan must refuse those files before parsing them.
    root = tmp_path / "models"
    item = b'{"' + b"k" * (_BYTES_PER_CONTAINER - 6) + b'":1},'
    for i in range(4):
        bundle = write_bundle(root / f"b{i}", seed=i)
        room = MAX_FILE_BYTES - (bundle / "metadata.json").stat().st_size - 64
        _with_params(bundle, b'{"blob": [' + item * (room // len(item)) + b"{}]}")

    seen = _scan_in_child(root, as_limit=400 << 20)

    reasons = seen["reasons"]
    assert isinstance(reasons, list)
    assert seen["ranked"] + len(reasons) == 4  # type: ignore[operator]
    assert reasons, "the limit was expected to run out"
    for reason in reasons:
        assert reason.startswith("invalid: metadata.json parse error: not enough memory")


def test_dense_metrics_are_refused_with_the_metrics_prefix(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "models" / "b0")
    _with_params(bundle, b"[" + b"[]," * 100_000 + b"[]]", file="metrics.json")

    scanned = read_bundle(bundle)

    assert scanned is not None and not scanned.valid
    assert scanned.invalid_reason is not None
    assert re.match(r"metrics\.json parse error: 1000\d\d JSON objects", scanned.invalid_reason)
    # §3 order: the metadata was parsed first, and is kept.
    assert scanned.metadata is not None


def test_brackets_inside_strings_do_not_count(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "models" / "b0")
    _with_params(bundle, json.dumps({"template": "{[" * 50_000}).encode())

    scanned = read_bundle(bundle)

    assert scanned is not None and scanned.valid, scanned
    assert scanned.metadata is not None
    assert scanned.metadata.params["template"] == "{[" * 50_000


def test_ordinary_and_large_but_sparse_files_stay_valid(tmp_path: Path) -> None:
    root = tmp_path / "models"
    labels = [f"label-{i}" for i in range(300)]
    write_bundle(root / "many-labels", label_set=labels)  # a 300x300 matrix: 301 arrays
    params = {f"feature_{i}": {"weight": i / 7, "bins": [i, i + 1]} for i in range(2_000)}
    write_bundle(root / "rich-params", extra_metadata={"params": params})

    bundles = {b.model_id: b for b in list_bundles(root)}

    assert bundles["many-labels"].valid, bundles["many-labels"].invalid_reason
    assert bundles["rich-params"].valid, bundles["rich-params"].invalid_reason
