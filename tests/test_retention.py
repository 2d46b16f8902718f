"""prune: planning, protection rules and safe deletion, on real registries in ``tmp_path``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BundleFactory, tree_state
from taskclf.model_registry import (
    ActivePointer,
    ExclusionRecord,
    ModelBundle,
    PruneError,
    RegistryError,
    SelectionPolicy,
    SelectionReport,
    activate_bundle,
    append_active_history,
    execute_prune,
    find_best_model,
    list_bundles,
    plan_prune,
    read_active_history,
    verify_registry,
)
from taskclf.model_registry._fs import atomic_write
from taskclf.model_registry.pointer import ACTIVE_FILE
from taskclf.model_registry.retention import LEFTOVER_MIN_AGE_S, TRASH_PREFIX, decide_retention
from taskclf.samples import write_bundle


def decisions(plan_dir: Path, **kwargs: object) -> dict[str, tuple[str, list[str]]]:
    plan = plan_prune(plan_dir, **kwargs)  # type: ignore[arg-type]
    return {d.model_id: (d.action, d.reasons) for d in plan.decisions}


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """r1 (best) .. r5 (worst); r4 then r2 activated (r2 active); one invalid, one incompatible."""
    for rank in range(1, 6):
        make_bundle(f"r{rank}", seed=rank, macro_f1=1.0 - rank / 10, weighted_f1=0.5)
    make_bundle("incompatible", seed=7, schema_hash="0123456789ab")
    # A bundle that lost its metadata (prune deletes only what looks like a bundle).
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "metrics.json").write_text("{")
    activate_bundle(models_dir, "r4")
    activate_bundle(models_dir, "r2")
    return models_dir


def test_plan_reasons(registry: Path) -> None:
    plan = plan_prune(registry, keep=2, keep_history=10)

    assert [d.model_id for d in plan.decisions] == sorted(d.model_id for d in plan.decisions)
    got = {d.model_id: d for d in plan.decisions}
    assert got["r1"].action == "keep"
    assert got["r1"].reasons == ["top 2: ranked #1 of 5 eligible"]
    # Every reason a bundle is kept is listed.
    assert got["r2"].reasons == [
        "active: the active pointer locates it",
        "top 2: ranked #2 of 5 eligible",
        "history: named in the last 10 history entries (a rollback target)",
    ]
    assert got["r4"].action == "keep"
    assert got["r4"].reasons == [
        "history: named in the last 10 history entries (a rollback target)"
    ]
    assert got["broken"].action == "keep"
    assert got["broken"].reasons[0].startswith("invalid: missing metadata.json (kept: ")
    assert got["r3"].action == "delete"
    assert got["r3"].reasons[0] == "ranked #3 of 5 eligible, below the top 2"
    assert got["incompatible"].action == "delete"
    assert got["incompatible"].reasons[0] == "not eligible: incompatible: schema_hash mismatch"
    assert {d.model_id for d in plan.to_delete} == {"r3", "r5", "incompatible"}
    assert plan.bytes_freed == sum(got[m].size_bytes for m in ("r3", "r5", "incompatible"))
    assert got["r3"].size_bytes == sum(
        f.stat().st_size for f in (registry / "r3").iterdir() if f.is_file()
    )
    assert plan.models_dir == registry


def test_plan_json_includes_the_summary(registry: Path) -> None:
    dumped = plan_prune(registry, keep=1).model_dump(mode="json")
    assert dumped["bytes_freed"] > 0
    assert {d["model_id"] for d in dumped["to_delete"]} == {"r3", "r5", "incompatible"}


def test_keep_history_limits_history_protection(registry: Path) -> None:
    got = decisions(registry, keep=1, keep_history=1)
    # The last entry is r4 -> r2: both still named.
    assert got["r4"][0] == "keep"
    activate_bundle(registry, "r1")  # last entry: r2 -> r1
    got = decisions(registry, keep=0, keep_history=1)
    assert got["r4"][0] == "delete"
    assert got["r2"] == (
        "keep",
        ["history: named in the last 1 history entries (a rollback target)"],
    )
    assert got["r1"][0] == "keep"
    got = decisions(registry, keep=0, keep_history=0)
    assert got["r2"][0] == "delete"
    assert got["r1"] == ("keep", ["active: the active pointer locates it"])


def test_include_invalid(registry: Path) -> None:
    got = decisions(registry, keep=0, keep_history=0, include_invalid=True)
    assert got["broken"][0] == "delete"
    assert got["broken"][1][0] == "invalid: missing metadata.json (--include-invalid given)"


def test_active_invalid_bundle_is_kept_even_with_include_invalid(registry: Path) -> None:
    pointer = ActivePointer(
        model_dir="broken", selected_at="2026-01-01T00:00:00+00:00", policy_version=1
    )
    atomic_write(registry / ACTIVE_FILE, pointer.model_dump_json().encode())
    got = decisions(registry, keep=0, keep_history=0, include_invalid=True)
    assert got["broken"] == ("keep", ["active: the active pointer locates it"])


@pytest.mark.parametrize(("keep", "keep_history"), [(-1, 0), (0, -1)])
def test_negative_counts_are_refused(registry: Path, keep: int, keep_history: int) -> None:
    with pytest.raises(PruneError, match=r"must be 0 or more") as caught:
        plan_prune(registry, keep=keep, keep_history=keep_history)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RegistryError)


def test_missing_registry(tmp_path: Path) -> None:
    with pytest.raises(PruneError, match=r"^Registry not found: .*nope does not exist\.$"):
        plan_prune(tmp_path / "nope", keep=1)
    assert not (tmp_path / "nope").exists()


def test_empty_registry(models_dir: Path) -> None:
    plan = plan_prune(models_dir, keep=1)
    assert plan.decisions == []
    assert execute_prune(plan) == plan
    assert os.listdir(models_dir) == []


def test_plan_changes_nothing(registry: Path) -> None:
    before = tree_state(registry)
    plan_prune(registry, keep=0, keep_history=0, include_invalid=True)
    assert tree_state(registry) == before


def test_execute_deletes_exactly_the_plan(registry: Path) -> None:
    plan = plan_prune(registry, keep=2)
    kept_before = {
        d.model_id: tree_state(registry / d.model_id) for d in plan.decisions if d.action == "keep"
    }

    executed = execute_prune(plan)

    assert executed.decisions == plan.decisions
    names = set(os.listdir(registry))
    assert not {"r3", "r5", "incompatible"} & names
    assert not [n for n in names if n.startswith(TRASH_PREFIX)]
    for model_id, state in kept_before.items():
        assert tree_state(registry / model_id) == state
    assert {b.model_id for b in list_bundles(registry)} == {"r1", "r2", "r4", "broken"}


def test_execute_replans_when_the_pointer_moved(registry: Path) -> None:
    plan = plan_prune(registry, keep=1, keep_history=0)
    assert "r3" in {d.model_id for d in plan.to_delete}
    activate_bundle(registry, "r3")

    executed = execute_prune(plan)

    assert (registry / "r3").is_dir()
    got = {d.model_id: d for d in executed.decisions}
    assert got["r3"].action == "keep"
    assert "active: the active pointer locates it" in got["r3"].reasons
    assert not (registry / "r5").exists()


def test_execute_never_deletes_more_than_reviewed(
    registry: Path, make_bundle: BundleFactory
) -> None:
    plan = plan_prune(registry, keep=3, keep_history=0)
    assert "r3" not in {d.model_id for d in plan.to_delete}
    make_bundle("r0", seed=20, macro_f1=0.99, weighted_f1=0.5)  # pushes r3 out of the top 3

    executed = execute_prune(plan)

    assert (registry / "r3").is_dir()
    assert (registry / "r0").is_dir()
    got = {d.model_id: d for d in executed.decisions}
    assert got["r3"].action == "keep"
    assert got["r3"].reasons[0].startswith("not in the reviewed plan's deletions")
    assert {d.model_id for d in executed.to_delete} == {"r4", "r5", "incompatible"}


def test_symlinked_bundle_loses_the_link_not_the_target(
    models_dir: Path, tmp_path: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("keep_me", seed=1, macro_f1=0.9, weighted_f1=0.9)
    outside = write_bundle(tmp_path / "elsewhere" / "linked", seed=2, macro_f1=0.1, weighted_f1=0.1)
    os.symlink(outside, models_dir / "linked")
    before = tree_state(outside)

    plan = plan_prune(models_dir, keep=1, keep_history=0)
    linked = next(d for d in plan.decisions if d.model_id == "linked")
    assert (linked.action, linked.size_bytes) == ("delete", 0)
    execute_prune(plan)

    assert not os.path.lexists(models_dir / "linked")
    assert tree_state(outside) == before
    assert (models_dir / "keep_me").is_dir()


def test_scans_ignore_a_trash_directory(models_dir: Path, make_bundle: BundleFactory) -> None:
    """What an interrupted prune leaves is invisible to scans."""
    make_bundle("kept")
    make_bundle("half_deleted", parent=models_dir / f"{TRASH_PREFIX}abc")
    assert [b.model_id for b in list_bundles(models_dir)] == ["kept"]
    assert [d.model_id for d in plan_prune(models_dir, keep=0).decisions] == ["kept"]


# --- property: protected bundles are never deleted ---------------------------

_NAMES = ["a", "b", "c", "d", "e", "f"]

_bundle_kinds = st.sampled_from(
    ["valid", "valid", "valid", "older_schema", "incompatible", "invalid"]
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kinds=st.lists(_bundle_kinds, min_size=0, max_size=len(_NAMES)),
    f1s=st.lists(st.sampled_from([0.5, 0.6, 0.7, 0.8]), min_size=len(_NAMES), max_size=len(_NAMES)),
    history=st.lists(
        st.tuples(st.sampled_from([*_NAMES, "gone", None]), st.sampled_from([*_NAMES, "gone"])),
        max_size=8,
    ),
    active=st.sampled_from([*_NAMES, "gone", "../escape", None]),
    keep=st.integers(0, 4),
    keep_history=st.integers(0, 5),
    include_invalid=st.booleans(),
)
def test_protected_bundles_are_never_deleted(
    kinds: list[str],
    f1s: list[float],
    history: list[tuple[str | None, str]],
    active: str | None,
    keep: int,
    keep_history: int,
    include_invalid: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        root.mkdir()
        for name, kind, f1 in zip(_NAMES, kinds, f1s, strict=False):
            if kind == "invalid":
                (root / name).mkdir()
                (root / name / "metrics.json").write_text("{")
                continue
            write_bundle(
                root / name,
                seed=ord(name),
                macro_f1=f1,
                weighted_f1=f1,
                schema_version="v2" if kind == "older_schema" else "v1",
                schema_hash="0123456789ab" if kind == "incompatible" else None,
            )

        def pointer(name: str) -> ActivePointer:
            return ActivePointer(
                model_dir=f"models/{name}",
                selected_at="2026-01-01T00:00:00+00:00",
                policy_version=1,
            )

        for old, new in history:
            append_active_history(root, pointer(old) if old else None, pointer(new))
        if active is not None:
            atomic_write(root / ACTIVE_FILE, pointer(active).model_dump_json().encode())

        all_ids = {b.model_id for b in list_bundles(root)}
        report = find_best_model(root)
        protected = {b.model_id for b in report.ranked[:keep]}
        if active in all_ids:
            protected.add(active)
        for old, new in history[-keep_history:] if keep_history else []:
            protected |= {name for name in (old, new) if name in all_ids}
        if not include_invalid:
            protected |= {r.model_id for r in report.excluded if r.reason.startswith("invalid: ")}

        plan = plan_prune(
            root, keep=keep, keep_history=keep_history, include_invalid=include_invalid
        )

        deleted = {d.model_id for d in plan.to_delete}
        kept = {d.model_id for d in plan.decisions if d.action == "keep"}
        assert not deleted & protected
        assert kept | deleted == all_ids
        assert not kept & deleted
        assert deleted == all_ids - protected
        assert all(d.reasons for d in plan.decisions)

        execute_prune(plan)
        remaining = {b.model_id for b in list_bundles(root)}
        assert remaining == kept
        assert not [n for n in os.listdir(root) if n.startswith(TRASH_PREFIX)]


def test_killed_prune_never_leaves_a_half_deleted_bundle(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    """SIGKILL a prune as soon as its trash directory appears (or whenever it ends)."""
    for rank in range(6):
        bundle = make_bundle(f"r{rank}", seed=rank, macro_f1=0.9 - rank / 10, weighted_f1=0.5)
        # Many files, so that removing the trash takes long enough to be interrupted.
        for part in range(300):
            (bundle / f"part-{part:03d}.bin").write_bytes(b"x" * 64)
    expected = {rank: sorted(os.listdir(models_dir / f"r{rank}")) for rank in range(6)}
    code = (
        "import sys; from taskclf.model_registry import plan_prune, execute_prune; "
        "execute_prune(plan_prune(sys.argv[1], keep=2, keep_history=0))"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(models_dir)])
    try:
        while process.poll() is None:
            if any(name.startswith(TRASH_PREFIX) for name in os.listdir(models_dir)):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait()

    visible = {b.model_id: b for b in list_bundles(models_dir)}
    assert {"r0", "r1"} <= set(visible)
    for rank in range(6):
        name = f"r{rank}"
        if name in visible:
            assert visible[name].valid
            assert sorted(os.listdir(models_dir / name)) == expected[rank]
    leftovers = [n for n in os.listdir(models_dir) if n.startswith(TRASH_PREFIX)]
    report = verify_registry(models_dir)
    assert ("leftover-trash-dir" in {f.code for f in report.findings}) == bool(leftovers)


def test_prune_and_set_active_from_another_process_serialise(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    """Whatever the interleaving, the pointer never names a bundle prune deleted."""
    names = [f"r{rank:02d}" for rank in range(40)]
    for rank, name in enumerate(names):
        make_bundle(name, seed=rank, macro_f1=0.9 - rank / 100)
    activate_bundle(models_dir, "r00")
    code = (
        "import sys\n"
        "from taskclf.model_registry import ActivationError, activate_bundle\n"
        "for name in sys.argv[2:]:\n"
        "    try:\n"
        "        activate_bundle(sys.argv[1], name)\n"
        "    except ActivationError:\n"
        "        print('refused', flush=True)\n"
        "    else:\n"
        "        print('activated', flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(models_dir), *names[::-1]],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        outcomes = [process.stdout.readline().strip()]  # the writer has started writing
        while process.poll() is None:
            execute_prune(plan_prune(models_dir, keep=0, keep_history=0))
        outcomes += process.stdout.read().split()
    assert process.returncode == 0
    assert outcomes[0] == "activated"
    survivors = {b.model_id for b in list_bundles(models_dir)}
    history = read_active_history(models_dir)
    # Every successful activation is in the history; refused ones were already pruned.
    assert len(history) == 1 + outcomes.count("activated")
    refused = {n for n, o in zip(names[::-1], outcomes, strict=True) if o == "refused"}
    assert not refused & survivors

    report = verify_registry(models_dir)
    assert report.active_model_id is not None
    assert (models_dir / report.active_model_id).is_dir()
    assert report.healthy, report.findings
    assert "history-chain-broken" not in {f.code for f in report.findings}


def test_decide_retention_is_pure() -> None:
    """The rules need no disk: a report, the active id and the history names."""
    ranked = [ModelBundle(model_id=m, path=Path(f"/m/{m}"), valid=True) for m in ("x", "y", "z")]
    report = SelectionReport(
        best=ranked[0],
        ranked=ranked,
        excluded=[ExclusionRecord(model_id="bad", path=Path("/m/bad"), reason="invalid: nope")],
        policy=SelectionPolicy(),
        required_schema_hash="h",
    )
    got = decide_retention(report, "z", {"y"}, keep=1, keep_history=2, include_invalid=True)
    assert [(model_id, action) for model_id, _, action, _ in got] == [
        ("bad", "delete"),
        ("x", "keep"),
        ("y", "keep"),
        ("z", "keep"),
    ]
    assert got[0][3] == [
        "invalid: nope (--include-invalid given)",
        "not active; not named in the last 2 history entries",
    ]


def _age(path: Path, seconds: float) -> None:
    """Backdate ``path`` (not following symlinks) by ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.fixture
def leftovers(registry: Path, tmp_path: Path) -> dict[str, Path]:
    """What crashed operations leave: stale and fresh temp files, trash, staging, a symlink."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    made = {
        "stale_temp": registry / ".active.json.k3j2.tmp",
        "fresh_temp": registry / ".index.json.q9x1.tmp",
        "stale_trash": registry / f"{TRASH_PREFIX}a1b2",
        "stale_staging": registry / ".staging-c3d4",
        "stale_trash_link": registry / f"{TRASH_PREFIX}link",
    }
    made["stale_temp"].write_text("{")
    made["fresh_temp"].write_text("{")
    write_bundle(made["stale_trash"] / "half-deleted", seed=3)
    write_bundle(made["stale_staging"] / "moved-candidate", seed=4)
    made["stale_trash_link"].symlink_to(outside)
    for key in ("stale_temp", "stale_trash", "stale_staging", "stale_trash_link"):
        _age(made[key], 2 * LEFTOVER_MIN_AGE_S)
    made["outside"] = outside
    return made


def test_plan_lists_only_stale_temp_and_trash_leftovers(
    registry: Path, leftovers: dict[str, Path]
) -> None:
    before = tree_state(registry)
    plan = plan_prune(registry, keep=10)

    assert plan.leftovers == sorted(
        [leftovers["stale_temp"], leftovers["stale_trash"], leftovers["stale_trash_link"]]
    )
    assert tree_state(registry) == before  # planning removes nothing


def test_execute_removes_stale_leftovers_but_never_staging_or_fresh_ones(
    registry: Path, leftovers: dict[str, Path]
) -> None:
    executed = execute_prune(plan_prune(registry, keep=10))

    assert len(executed.leftovers) == 3
    for key in ("stale_temp", "stale_trash", "stale_trash_link"):
        assert not os.path.lexists(leftovers[key]), key
    # A staging dir may hold the only copy of a moved candidate; a fresh temp file may
    # belong to a write in progress; a symlinked trash loses the link, not its target.
    assert (leftovers["stale_staging"] / "moved-candidate" / "metadata.json").is_file()
    assert leftovers["fresh_temp"].is_file()
    assert (leftovers["outside"] / "precious.txt").read_text() == "keep me"
    codes = {finding.code for finding in verify_registry(registry).findings}
    assert "leftover-trash-dir" not in codes
    assert "leftover-staging-dir" in codes
    kept = {d.model_id for d in executed.decisions if d.action == "keep"}
    assert {b.model_id for b in list_bundles(registry)} == kept


def test_verify_points_at_prune_for_stale_leftovers(
    registry: Path, leftovers: dict[str, Path]
) -> None:
    by_path = {finding.path: finding for finding in verify_registry(registry).findings}

    assert "taskclf model prune" in by_path[str(leftovers["stale_temp"])].message
    assert "only copy" in by_path[str(leftovers["stale_staging"])].message
