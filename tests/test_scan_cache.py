"""The stat-keyed scan cache (issue 13): never stale, never trusted over the files.

The property: whatever happens to bundle files between scans, a scan with
the cache returns exactly what a scan without it returns, reason strings,
parsed models and their fields-sets included. Files only become cacheable
once they are older than the racy window, so the tests that need cache hits
let that much time pass first: that is the scenario under test (files
written a while ago), not a wait for something to happen.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from conftest import tree_state
from taskclf.model_registry import find_best_model, list_bundles, list_rows
from taskclf.model_registry import scan as scan_module
from taskclf.model_registry import scan_cache as scan_cache_module
from taskclf.model_registry.caching import CACHE_DIR_ENV, RACY_WINDOW_NS
from taskclf.model_registry.lazy_bundle import ROW_FACTS_AT
from taskclf.model_registry.scan_cache import (
    REWRITE_EVERY,
    VERSION,
    cache_file,
    join_file,
    split_file,
)
from taskclf.samples import write_bundle

FILES = ("metadata.json", "metrics.json")
NAMES = ("a", "b", "c")


def age_files() -> None:
    """Let the racy window pass, so that files written so far may be cached."""
    time.sleep(RACY_WINDOW_NS / 1e9 * 1.5)


@contextlib.contextmanager
def cache_off() -> Iterator[None]:
    saved = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = ""
    try:
        yield
    finally:
        if saved is None:
            del os.environ[CACHE_DIR_ENV]
        else:
            os.environ[CACHE_DIR_ENV] = saved


def described(root: Path) -> list[tuple[Any, ...]]:
    """Everything a scan returns, fields-sets included, in comparable form."""
    out = []
    for bundle in list_bundles(root):
        out.append(
            (
                bundle.model_id,
                bundle.path,
                bundle.valid,
                bundle.invalid_reason,
                bundle.created_at,
                None if bundle.metadata is None else bundle.metadata.model_dump(),
                None if bundle.metadata is None else bundle.metadata.model_fields_set,
                None if bundle.metrics is None else bundle.metrics.model_dump(),
                None if bundle.metrics is None else bundle.metrics.model_fields_set,
            )
        )
    return out


def fresh(root: Path) -> list[tuple[Any, ...]]:
    with cache_off():
        return described(root)


def assert_cached_equals_fresh(root: Path) -> None:
    # Ranked first, while the cached bundles are still incomplete (selection reads their
    # cached facts), then compared whole: exclusion reasons, ranking and every bundle.
    report = find_best_model(root)
    # Again: an unchanged registry's ranking may now come from the ranking cache.
    again = find_best_model(root)
    with cache_off():
        fresh_report = find_best_model(root)
    assert report.model_dump_json() == fresh_report.model_dump_json()
    assert again.model_dump_json() == fresh_report.model_dump_json()
    assert report == fresh_report
    # train list's rows, built from the cached facts (json: NaN equals itself as text).
    rows = json.dumps([row.model_dump() for row in list_rows(root, sort="created_at")])
    with cache_off():
        fresh_rows = json.dumps([row.model_dump() for row in list_rows(root, sort="created_at")])
    assert rows == fresh_rows
    cached = described(root)
    assert cached == fresh(root)


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the bundles a scan reads from their files (not from the cache)."""
    reads: list[str] = []
    original = scan_module._read_bundle

    def counting(root: Path, name: str, base: str, stats: Any = None, **kwargs: Any) -> Any:
        reads.append(name)
        return original(root, name, base, stats, **kwargs)

    monkeypatch.setattr(scan_module, "_read_bundle", counting)
    return reads


def same_size_rewrite(path: Path, index: int) -> None:
    """Change one digit of ``path``, keeping its size and its mtime (not its ctime)."""
    data = bytearray(path.read_bytes())
    digits = [i for i, byte in enumerate(data) if 0x30 <= byte <= 0x39]
    if not digits:
        return
    position = digits[index % len(digits)]
    data[position] = 0x30 + (data[position] - 0x30 + 1) % 10
    info = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


# --- the property -------------------------------------------------------------


class ScanCacheMachine(RuleBasedStateMachine):
    """Random create / rewrite / truncate / delete / rename / re-add sequences between scans."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="taskclf-scan-cache-"))
        self.root = self.tmp / "models"
        self.root.mkdir()
        self.saved_env = os.environ.get(CACHE_DIR_ENV)
        os.environ[CACHE_DIR_ENV] = str(self.tmp / "cache")

    def teardown(self) -> None:
        if self.saved_env is None:
            os.environ.pop(CACHE_DIR_ENV, None)
        else:
            os.environ[CACHE_DIR_ENV] = self.saved_env
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        write_bundle(self.root / "a", seed=1)
        write_bundle(self.root / "b", seed=2, accuracy=0.7)

    @rule(name=st.sampled_from(NAMES), seed=st.integers(0, 5))
    def create(self, name: str, seed: int) -> None:
        if not (self.root / name).exists():
            write_bundle(self.root / name, seed=seed, accuracy=0.6 + seed / 20)

    @rule(name=st.sampled_from(NAMES), file=st.sampled_from(FILES), index=st.integers(0, 400))
    def rewrite_same_size_same_mtime(self, name: str, file: str, index: int) -> None:
        path = self.root / name / file
        if path.is_file():
            same_size_rewrite(path, index)

    @rule(name=st.sampled_from(NAMES), file=st.sampled_from(FILES), keep=st.integers(0, 200))
    def truncate(self, name: str, file: str, keep: int) -> None:
        path = self.root / name / file
        if path.is_file():
            with path.open("r+b") as handle:
                handle.truncate(keep)

    @rule(
        name=st.sampled_from(NAMES),
        file=st.sampled_from(FILES),
        content=st.sampled_from(
            [None, "directory", b"{", b"{}", b"[]", b"\xff\xfe", b'{"macro_f1": 1.5}', b""]
        ),
    )
    def replace_file(self, name: str, file: str, content: bytes | str | None) -> None:
        """Delete it, put a directory in its place, or write other bytes."""
        path = self.root / name / file
        if not path.parent.is_dir():
            return
        if path.is_dir():
            path.rmdir()
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if content == "directory":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)

    @rule(name=st.sampled_from(NAMES))
    def delete_bundle(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    @rule(
        source=st.sampled_from(NAMES),
        destination=st.sampled_from(NAMES),
        file=st.sampled_from([None, *FILES]),
    )
    def rename(self, source: str, destination: str, file: str | None) -> None:
        """Rename a bundle, or move one of its files into another bundle."""
        if file is None:
            if (self.root / source).is_dir() and not (self.root / destination).exists():
                os.rename(self.root / source, self.root / destination)
            return
        # Same file name, other bundle: the stat (inode included) moves with the file.
        src, dst = self.root / source / file, self.root / destination / file
        if source != destination and src.is_file() and dst.parent.is_dir() and not dst.exists():
            os.rename(src, dst)

    @rule(after_a_while=st.booleans())
    def scan(self, after_a_while: bool) -> None:
        # After a while, the files are old enough for this scan to cache them.
        if after_a_while:
            age_files()
        assert_cached_equals_fresh(self.root)


ScanCacheMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_cached_scan_equals_a_fresh_scan = ScanCacheMachine.TestCase


# --- the cache is used, and only when it may be ------------------------------


def test_unchanged_bundles_are_not_read_again(models_dir: Path, count_reads: list[str]) -> None:
    for index in range(5):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    described(models_dir)  # the first scan of a registry leaves only a marker
    count_reads.clear()
    first = described(models_dir)
    assert sorted(count_reads) == [f"b{index}" for index in range(5)]
    count_reads.clear()
    assert described(models_dir) == first
    assert count_reads == []
    # One bundle changes: only it is read again.
    same_size_rewrite(models_dir / "b3" / "metrics.json", 7)
    assert described(models_dir)[3] != first[3]
    assert count_reads == ["b3"]
    assert_cached_equals_fresh(models_dir)


def test_a_cache_written_by_other_code_is_not_used(
    models_dir: Path, count_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(3):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    described(models_dir)
    described(models_dir)  # the cache file now exists
    count_reads.clear()
    described(models_dir)
    assert count_reads == []
    # An upgrade (or an edited checkout) may judge the same files differently: its
    # scans read every bundle again instead of trusting what older code concluded.
    monkeypatch.setattr(scan_cache_module, "code_identity", lambda: "other code")
    described(models_dir)
    assert sorted(count_reads) == ["b0", "b1", "b2"]
    assert_cached_equals_fresh(models_dir)


def test_a_registry_gets_a_cache_once_it_is_scanned_again(
    models_dir: Path, scan_cache_dir: Path, count_reads: list[str]
) -> None:
    """A one-off scan does not pay for serialising every bundle: it leaves a marker."""
    write_bundle(models_dir / "a", seed=1)
    age_files()
    path = cache_file(models_dir)
    assert path is not None
    described(models_dir)
    assert not path.exists()
    assert path.with_suffix(".seen").is_file()
    described(models_dir)
    assert path.is_file()
    count_reads.clear()
    assert_cached_equals_fresh(models_dir)
    assert count_reads == ["a", "a", "a"]  # only the fresh scans (report, rows, bundles) read it


def test_a_few_outdated_entries_do_not_rewrite_the_whole_file(
    models_dir: Path, count_reads: list[str]
) -> None:
    """Up to 1 bundle in REWRITE_EVERY is read from its files instead of rewriting the cache."""
    names = [f"b{index:02d}" for index in range(2 * REWRITE_EVERY)]  # rewrite above 2
    for index, name in enumerate(names):
        write_bundle(models_dir / name, seed=index)
    age_files()
    described(models_dir)
    described(models_dir)
    path = cache_file(models_dir)
    assert path is not None and path.is_file()
    written = path.stat().st_ino
    same_size_rewrite(models_dir / "b05" / "metrics.json", 3)
    write_bundle(models_dir / "c-new", seed=99)
    age_files()
    for _ in range(2):  # not rewritten: both are read from their files every time
        count_reads.clear()
        assert_cached_equals_fresh(models_dir)
        assert path.stat().st_ino == written
    count_reads.clear()
    described(models_dir)
    assert sorted(count_reads) == ["b05", "c-new"]
    # A third: more than 2 outdated, so this scan rewrites the file and the next reads nothing.
    shutil.rmtree(models_dir / "b07")
    count_reads.clear()
    described(models_dir)
    assert sorted(count_reads) == ["b05", "c-new"]
    assert path.stat().st_ino != written
    count_reads.clear()
    assert described(models_dir) == fresh(models_dir)
    count_reads.clear()
    described(models_dir)
    assert count_reads == []


def test_racily_clean_files_are_read_again(models_dir: Path, count_reads: list[str]) -> None:
    """Files changed within the racy window of a scan are not cached by it (git's rule)."""
    write_bundle(models_dir / "a", seed=1)
    # No time passes: the files are as new as the scan, so a same-size rewrite in the
    # same clock tick with the same mtime would look unchanged to stat. Unchanged
    # or not, the next scan reads them again.
    before = described(models_dir)
    described(models_dir)
    assert count_reads == ["a", "a"]
    same_size_rewrite(models_dir / "a" / "metrics.json", 3)
    after = described(models_dir)
    assert count_reads == ["a", "a", "a"]
    assert after != before
    assert after == fresh(models_dir)
    # Once old enough, they are cached.
    age_files()
    described(models_dir)
    count_reads.clear()
    assert described(models_dir) == after
    assert count_reads == []


def test_metadata_without_created_at_is_never_cached(
    models_dir: Path, count_reads: list[str]
) -> None:
    """Its created_at defaults to the parse time; a cached copy would freeze it."""
    bundle = write_bundle(models_dir / "a", seed=1)
    text = (bundle / "metadata.json").read_text()
    import json

    content = json.loads(text)
    del content["created_at"]
    (bundle / "metadata.json").write_text(json.dumps(content))
    age_files()
    described(models_dir)
    described(models_dir)
    assert count_reads == ["a", "a"]


# --- damaged, foreign, unreadable caches ----------------------------------------


def _damage_garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01not a cache at all")


def _damage_truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_foreign_version(path: Path) -> None:
    data = path.read_bytes()
    current = b'"version":%d' % VERSION
    assert current in data
    path.write_bytes(data.replace(current, b'"version":99', 1))


def _damage_older_version(path: Path) -> None:
    """What version 1 wrote: one line per bundle, ``name<TAB>key<TAB>key<TAB>payload``."""
    data = path.read_bytes()
    header = data[: data.index(b"\n") + 1].replace(b'"version":%d' % VERSION, b'"version":1')
    line = b"a\t1,2,3,4,5,6\t1,2,3,4,5,6\t[null,null,null,null]\n"
    import zlib

    path.write_bytes(header + line + b"end 1 %08x\n" % zlib.crc32(line))


def _damage_other_registry(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"registry":"', b'"registry":"/elsewhere', 1))


def _damage_flipped_digit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    position = data.index(b'"macro_f1":') + len(b'"macro_f1":') + 3
    data[position] = 0x30 + (data[position] - 0x30 + 1) % 10
    path.write_bytes(bytes(data))


def _damage_payload_types(path: Path) -> None:
    # Structurally complete, checksums recomputed, but a model's fields are wrong:
    # what a different writer of the same version could leave.
    sections = split_file(path.read_bytes())
    payloads = sections.payloads.replace(b'"macro_f1"', b'"macro_F1"')
    records = json.loads(sections.index_line)["bundles"]
    lengths = [len(line) + 1 for line in payloads.split(b"\n")[:-1]]
    start = 0
    for record, length in zip(records, lengths, strict=True):
        record[1], record[2] = start, length
        start += length
    index = json.dumps({**json.loads(sections.index_line), "bundles": records}).encode() + b"\n"
    edited = sections._replace(index_line=index, payloads=payloads)
    path.write_bytes(join_file(edited, len(records)))


def _rewrite_records(path: Path, edit: Any) -> None:
    """Apply ``edit`` to every index record, checksums recomputed (another writer's file)."""
    sections = split_file(path.read_bytes())
    index = json.loads(sections.index_line)
    index["bundles"] = [edit(record) for record in index["bundles"]]
    line = json.dumps(index).encode() + b"\n"
    path.write_bytes(join_file(sections._replace(index_line=line), len(index["bundles"])))


def _damage_short_records(path: Path) -> None:
    # Records without their row facts (as version 2 wrote them) under this version's header.
    _rewrite_records(path, lambda record: record[:ROW_FACTS_AT])


def _damage_flipped_key_byte(path: Path) -> None:
    # A byte of the binary stat keys, the checksum left as it was.
    data = bytearray(path.read_bytes())
    sections = split_file(bytes(data))
    data[len(data) - len(sections.payloads) - len(sections.keys) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _damage_keys_short(path: Path) -> None:
    # One key pair missing, the prelude and checksums made to match: records and keys disagree.
    sections = split_file(path.read_bytes())
    records = len(json.loads(sections.index_line)["bundles"])
    shorter = sections._replace(keys=sections.keys[: -len(sections.keys) // records])
    path.write_bytes(join_file(shorter, records))


def _damage_empty(path: Path) -> None:
    path.write_bytes(b"")


def _damage_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "damage",
    [
        _damage_garbage,
        _damage_truncated,
        _damage_foreign_version,
        _damage_older_version,
        _damage_other_registry,
        _damage_flipped_digit,
        _damage_payload_types,
        _damage_short_records,
        _damage_flipped_key_byte,
        _damage_keys_short,
        _damage_empty,
        _damage_directory,
    ],
)
def test_a_damaged_cache_is_ignored_and_rebuilt(
    models_dir: Path, count_reads: list[str], damage: Any
) -> None:
    for index in range(4):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    described(models_dir)
    expected = described(models_dir)
    path = cache_file(models_dir)
    assert path is not None and path.is_file()
    damage(path)
    count_reads.clear()
    got = described(models_dir)
    assert sorted(set(count_reads)) == [f"b{index}" for index in range(4)]
    assert got == expected == fresh(models_dir)
    if damage in (_damage_flipped_digit, _damage_payload_types):
        # Payloads are checked when first read (a scan that only ranks never reads them):
        # the damage dropped the file, so the next scan reads the bundles and rebuilds it.
        assert not path.exists()
        assert described(models_dir) == expected
    if damage is not _damage_directory:
        # Rebuilt: the next scan reads nothing.
        count_reads.clear()
        assert described(models_dir) == expected
        assert count_reads == []


def test_a_key_no_file_has_makes_that_bundle_read_again(
    models_dir: Path, scan_cache_dir: Path, count_reads: list[str]
) -> None:
    """Keys another writer changed (checksums right) only cost reading those bundles."""
    for index in range(3):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    expected = described(models_dir)
    described(models_dir)
    path = cache_file(models_dir)
    assert path is not None and path.is_file()
    sections = split_file(path.read_bytes())
    pair = len(sections.keys) // 3
    changed = sections.keys[:pair] + b"\x07" * pair + sections.keys[2 * pair :]
    path.write_bytes(join_file(sections._replace(keys=changed), 3))
    count_reads.clear()
    assert described(models_dir) == expected
    assert count_reads == ["b1"]


def test_row_facts_of_the_wrong_types_are_read_off_the_models(
    models_dir: Path, scan_cache_dir: Path, count_reads: list[str]
) -> None:
    """A record whose row facts are not what a scan writes: the row comes from the payload."""
    for index in range(3):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    expected = [row.model_dump() for row in list_rows(models_dir)]
    list_rows(models_dir)
    path = cache_file(models_dir)
    assert path is not None and path.is_file()
    _rewrite_records(path, lambda record: [*record[:ROW_FACTS_AT], 1, "x", "y", [], {}])
    count_reads.clear()
    assert [row.model_dump() for row in list_rows(models_dir)] == expected
    assert count_reads == []  # the scan used the cache; only the row facts were not used


def test_an_unwritable_cache_directory_still_scans(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path_factory.mktemp("blocked") / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    write_bundle(models_dir / "a", seed=1)
    age_files()
    assert_cached_equals_fresh(models_dir)
    assert blocker.read_text() == "a file where the cache directory should be"


def test_empty_cache_dir_setting_turns_the_cache_off(
    models_dir: Path, scan_cache_dir: Path, monkeypatch: pytest.MonkeyPatch, count_reads: list[str]
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, "")
    write_bundle(models_dir / "a", seed=1)
    age_files()
    described(models_dir)
    described(models_dir)
    assert count_reads == ["a", "a"]
    assert cache_file(models_dir) is None
    assert list(scan_cache_dir.iterdir()) == []


def test_scans_never_write_in_the_registry(models_dir: Path, scan_cache_dir: Path) -> None:
    """The cache lives in the user's cache directory: a read-only registry scans the same."""
    for index in range(3):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    before = tree_state(models_dir)
    root_mtime = models_dir.stat().st_mtime_ns
    list_bundles(models_dir)
    find_best_model(models_dir)
    list_bundles(models_dir)
    assert tree_state(models_dir) == before
    assert models_dir.stat().st_mtime_ns == root_mtime
    path = cache_file(models_dir)
    assert path is not None and path.is_file()
    assert path.is_relative_to(scan_cache_dir)


def test_read_only_registry_scans_with_the_cache(models_dir: Path, count_reads: list[str]) -> None:
    for index in range(3):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    os.chmod(models_dir, 0o555)
    try:
        described(models_dir)
        first = described(models_dir)
        count_reads.clear()
        assert described(models_dir) == first
        assert count_reads == []
        assert first == fresh(models_dir)
    finally:
        os.chmod(models_dir, 0o755)


def test_a_recreated_registry_is_scanned_afresh(models_dir: Path) -> None:
    write_bundle(models_dir / "a", seed=1)
    age_files()
    list_bundles(models_dir)
    shutil.rmtree(models_dir)
    models_dir.mkdir()
    write_bundle(models_dir / "a", seed=2)
    # Same path and bundle name, maybe even the same inode numbers reused: the stat
    # keys (ctime) still tell the new files apart.
    age_files()
    assert_cached_equals_fresh(models_dir)


# --- concurrent scanners ------------------------------------------------------------

_SCANNER = textwrap.dedent(
    """
    import sys
    from taskclf.model_registry import list_bundles
    root, rounds = sys.argv[1], int(sys.argv[2])
    for _ in range(rounds):
        list_bundles(root)
    print("done", flush=True)
    """
)


def test_concurrent_scanners_never_corrupt_the_cache(
    models_dir: Path, count_reads: list[str]
) -> None:
    """Several processes scan (and rewrite the cache) while bundles change; one is killed."""
    for index in range(6):
        write_bundle(models_dir / f"b{index}", seed=index)
    age_files()
    scanners = [
        subprocess.Popen(
            [sys.executable, "-c", _SCANNER, str(models_dir), "40"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    victim = subprocess.Popen(
        [sys.executable, "-c", _SCANNER, str(models_dir), "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for step in range(12):
            write_bundle(models_dir / f"n{step}", seed=100 + step)
            same_size_rewrite(models_dir / f"b{step % 6}" / "metrics.json", step)
            age_files()
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    for scanner in scanners:
        out, err = scanner.communicate(timeout=300)
        assert scanner.returncode == 0, err.decode()
        assert out == b"done\n"
    age_files()
    assert_cached_equals_fresh(models_dir)
    # The cache file the processes left is whole: once rewritten by this scan, the
    # next one reads nothing.
    count_reads.clear()
    described(models_dir)
    assert count_reads == []
