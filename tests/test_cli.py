"""Every ``taskclf`` command and its failure paths, through typer's CliRunner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner, Result

from conftest import one_sentence_error
from taskclf.cli import options
from taskclf.cli.main import app
from taskclf.model_registry import read_active, read_index_cache

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None})  # pipes get the wide page: rows never wrap


def run(*args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env, input=stdin)


def run_json(*args: str | Path) -> Any:
    result = run(*args, "--json")
    assert result.stdout.count("\n") >= 1
    return json.loads(result.stdout)


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Three valid v1 bundles (a < b < c by macro F1), one incompatible, one invalid."""
    make_bundle("a", macro_f1=0.70, seed=1)
    make_bundle("b", macro_f1=0.80, seed=2)
    make_bundle("c", macro_f1=0.90, seed=3)
    make_bundle("alien", macro_f1=0.95, schema_hash="000000000000", seed=4)
    broken = make_bundle("broken", seed=5)
    (broken / "metrics.json").write_text("{")
    return models_dir


# --- train list ---------------------------------------------------------------------------


def test_train_list_table_marks_active_and_formats_numbers(registry: Path) -> None:
    assert run("model", "set-active", "--model-id", "b", "--models-dir", registry).exit_code == 0

    result = run("train", "list", "--models-dir", registry)

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("Model Bundles")
    active_lines = [line for line in out.splitlines() if "*" in line]
    assert len(active_lines) == 1 and " b " in active_lines[0]
    assert "0.8000" in out and "0.9000" in out
    broken_line = next(line for line in out.splitlines() if " broken " in line)
    assert "--" in broken_line and "invalid: metrics.json parse error" in broken_line
    # ranking: alien (0.95) first, broken (null) last
    ids = re.findall(r"^│ \*? *│ (\S+)", out, flags=re.MULTILINE)
    assert ids == ["alien", "c", "b", "a", "broken"]


def test_train_list_json_has_exactly_ten_keys(registry: Path) -> None:
    rows = run_json("train", "list", "--models-dir", registry)

    assert [r["model_id"] for r in rows] == ["alien", "c", "b", "a", "broken"]
    for row in rows:
        # CLI.md's ten keys, plus the ``aliases`` list issue 14 adds beside ``active``.
        assert set(row) == {
            "model_id", "created_at", "schema_hash", "macro_f1", "weighted_f1",
            "bi_prec", "min_prec", "eligible", "active", "notes", "aliases",
        }  # fmt: skip
        assert row["aliases"] == []
    assert rows[0]["eligible"] is False and rows[0]["notes"] == "incompatible: schema_hash mismatch"
    assert rows[-1]["macro_f1"] is None


def test_train_list_eligible_sort_and_schema_hash(
    registry: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v2", schema_version="v2", macro_f1=0.5, seed=9)
    eligible = run_json("train", "list", "--models-dir", registry, "--eligible")
    assert [r["model_id"] for r in eligible] == ["c", "b", "a", "v2"]

    by_time = run_json("train", "list", "--models-dir", registry, "--sort", "created_at")
    # Newest first by seed (9, 5, 4, 3, 2, 1); broken's metrics do not parse, but its
    # metadata does, so its created_at is a key like any other (not null, not last).
    assert [r["model_id"] for r in by_time] == ["v2", "broken", "alien", "c", "b", "a"]

    pinned = run_json("train", "list", "--models-dir", registry, "--schema-hash", "000000000000")
    assert [r["model_id"] for r in pinned if r["eligible"]] == ["alien"]


def test_train_list_unknown_sort_exits_1_listing_allowed_values(registry: Path) -> None:
    line = one_sentence_error(run("train", "list", "--models-dir", registry, "--sort", "name"))

    assert "macro_f1, weighted_f1, created_at" in line


def test_train_list_empty_registry(models_dir: Path) -> None:
    result = run("train", "list", "--models-dir", models_dir)
    assert result.exit_code == 0
    assert result.stdout.strip() == "No model bundles found."
    assert run_json("train", "list", "--models-dir", models_dir) == []


def test_train_list_eligible_with_nothing_eligible_says_so(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("alien", schema_hash="000000000000")
    result = run("train", "list", "--models-dir", models_dir, "--eligible")
    assert result.exit_code == 0
    assert result.stdout.startswith("No eligible model bundles found;")
    assert run_json("train", "list", "--models-dir", models_dir, "--eligible") == []


def test_missing_registry_is_one_sentence_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for command in (
        ["train", "list"],
        ["model", "resolve"],
        ["model", "history"],
        ["model", "index"],
        ["model", "prune", "--keep", "1"],
    ):
        line = one_sentence_error(run(*command, "--models-dir", missing))
        assert str(missing) in line and "--models-dir" in line


def test_models_dir_from_env_then_cwd(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = run("train", "list", "--json", env={"TASKCLF_MODELS_DIR": str(registry)})
    assert len(json.loads(from_env.stdout)) == 5

    monkeypatch.chdir(registry.parent)  # ./models is the default
    monkeypatch.delenv("TASKCLF_MODELS_DIR", raising=False)
    assert len(run_json("train", "list")) == 5


# --- set-active ---------------------------------------------------------------------------


def test_set_active_prints_the_contract_sentence(registry: Path) -> None:
    result = run("model", "set-active", "--model-id", "a", "--models-dir", registry)

    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(
        r"Active model set to a \(macro_f1=0\.7000, at=\d{4}-\d\d-\d\dT[^)]+\+00:00\)\n",
        result.stdout,
    )
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "a"
    assert pointer.reason is not None and pointer.reason["note"] == "manual set-active"


@pytest.mark.parametrize(
    ("model_id", "sentence"),
    [
        ("ghost", "Bundle directory not found: "),
        ("broken", "Bundle is invalid: metrics.json parse error"),
        ("alien", "Bundle is incompatible with the current schema/labels: "),
    ],
)
def test_set_active_refusals_write_nothing(registry: Path, model_id: str, sentence: str) -> None:
    line = one_sentence_error(
        run("model", "set-active", "--model-id", model_id, "--models-dir", registry)
    )

    assert line.startswith(f"Error: {sentence}")
    assert not (registry / "active.json").exists()


def test_set_active_json(registry: Path) -> None:
    pointer = run_json("model", "set-active", "--model-id", "c", "--models-dir", registry)
    assert pointer["model_id"] == "c" and pointer["model_dir"] == "models/c"


# --- resolve ------------------------------------------------------------------------------


def test_resolve_repairs_then_follows_pointer(registry: Path) -> None:
    first = run("model", "resolve", "--models-dir", registry)
    assert first.exit_code == 0
    assert "repaired active.json" in first.stdout and "c" in first.stdout
    assert "warning:" in first.stderr  # the library's warning goes to stderr, not stdout

    second = run_json("model", "resolve", "--models-dir", registry)
    assert second["source"] == "pointer"
    assert second["active"]["model_id"] == "c"


def test_resolve_json_after_scan(registry: Path) -> None:
    data = run_json("model", "resolve", "--models-dir", registry)

    assert data["source"] == "scan" and data["pointer_repaired"] is True
    assert {e["model_id"] for e in data["excluded"]} == {"alien", "broken"}


def test_resolve_nothing_eligible_lists_every_exclusion(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("alien", schema_hash="000000000000", seed=1)
    (models_dir / "empty").mkdir()

    result = run("model", "resolve", "--models-dir", models_dir)

    assert result.exit_code == 1
    assert "  - alien: incompatible: schema_hash mismatch" in result.stderr
    assert "  - empty: invalid: missing metadata.json" in result.stderr
    assert result.stdout == ""
    # Issue 10: a failure in JSON mode has the error shape, with the exclusions that explain it.
    data = run_json("model", "resolve", "--models-dir", models_dir)
    assert data["error"].startswith("No eligible model bundle in ") and len(data["excluded"]) == 2


# --- history and rollback -----------------------------------------------------------------


def _activate(registry: Path, *ids: str) -> None:
    for model_id in ids:
        result = run("model", "set-active", "--model-id", model_id, "--models-dir", registry)
        assert result.exit_code == 0, result.stderr


def test_history_newest_first_with_limit(registry: Path) -> None:
    _activate(registry, "a", "b", "c")

    entries = run_json("model", "history", "--models-dir", registry)
    assert [(e["from"], e["to"]) for e in entries] == [("b", "c"), ("a", "b"), (None, "a")]
    assert entries[0]["note"] == "manual set-active"
    assert len(run_json("model", "history", "--models-dir", registry, "--limit", "1")) == 1

    table = run("model", "history", "--models-dir", registry).stdout
    assert table.index("manual set-active") > 0
    assert table.splitlines()[0].startswith("Active pointer history")


def test_history_empty_and_bad_limit(registry: Path) -> None:
    assert "No pointer history yet" in run("model", "history", "--models-dir", registry).stdout
    line = one_sentence_error(run("model", "history", "--models-dir", registry, "--limit", "0"))
    assert "--limit" in line


def test_rollback_default_steps_and_to(registry: Path) -> None:
    _activate(registry, "a", "b", "c")

    result = run("model", "rollback", "--models-dir", registry)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Rolled back from c to b (macro_f1=0.8000")
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "b"
    assert pointer.reason is not None and pointer.reason["note"] == "rollback"

    data = run_json("model", "rollback", "--models-dir", registry, "--steps", "2")
    assert (data["from"], data["to"]) == ("b", "a")

    data = run_json("model", "rollback", "--models-dir", registry, "--to", "c")
    assert data["to"] == "c" and data["active"]["model_id"] == "c"


def test_rollback_dry_run_changes_nothing(registry: Path) -> None:
    _activate(registry, "a", "b")
    before = (registry / "active.json").read_bytes()

    result = run("model", "rollback", "--models-dir", registry, "--dry-run")

    assert result.exit_code == 0
    assert "Would roll back from b to a" in result.stdout
    assert (registry / "active.json").read_bytes() == before
    data = run_json("model", "rollback", "--models-dir", registry, "--dry-run")
    assert data["executed"] is False and data["active"] is None


@pytest.mark.parametrize(
    "extra",
    [
        [],  # only one model ever active
        ["--to", "ghost"],
        ["--to", "broken"],
        ["--to", "a", "--steps", "1"],
        ["--steps", "0"],
        ["--steps", "5"],
    ],
)
def test_rollback_failures(registry: Path, extra: list[str]) -> None:
    _activate(registry, "a")
    before = (registry / "active.json").read_bytes()

    one_sentence_error(run("model", "rollback", "--models-dir", registry, *extra))

    assert (registry / "active.json").read_bytes() == before


# --- promote ------------------------------------------------------------------------------


def test_promote_moves_pointer_and_explains(registry: Path, tmp_path: Path) -> None:
    from taskclf.samples import write_bundle

    _activate(registry, "c")
    candidate = write_bundle(tmp_path / "incoming" / "d", macro_f1=0.99, seed=7)

    result = run("model", "promote", candidate, "--models-dir", registry)

    assert result.exit_code == 0, result.stderr
    assert f"Promoted d into the registry at {registry / 'd'}." in result.stdout
    assert "Ranking after promotion" in result.stdout
    assert "moved from c to d" in result.stdout
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "d"
    assert candidate.is_dir()  # copied, not moved


def test_promote_hysteresis_and_not_best(registry: Path, tmp_path: Path) -> None:
    from taskclf.samples import write_bundle

    _activate(registry, "c")
    close = write_bundle(tmp_path / "in" / "close", macro_f1=0.905, seed=8)
    worse = write_bundle(tmp_path / "in" / "worse", macro_f1=0.5, seed=9)

    result = run("model", "promote", worse, "--models-dir", registry, "--name", "renamed", "--move")
    assert result.exit_code == 0, result.stderr
    assert "did not change: c is still the best" in result.stdout
    assert "renamed ranks #4 of 4 eligible" in result.stdout

    data = run_json(
        "model", "promote", close, "--models-dir", registry, "--min-improvement", "0.02"
    )
    assert data["active_updated"] is False
    assert "hysteresis" in data["explanation"]
    assert data["best_model_id"] == "close"
    assert (registry / "renamed").is_dir() and not worse.exists()


def test_promote_failures(registry: Path, tmp_path: Path) -> None:
    from taskclf.samples import write_bundle

    bad = write_bundle(tmp_path / "in" / "bad", schema_hash="000000000000", seed=3)
    line = one_sentence_error(run("model", "promote", bad, "--models-dir", registry))
    assert "bad" in line and "schema_hash mismatch" in line
    assert not (registry / "bad").exists()

    dup = write_bundle(tmp_path / "in" / "a", seed=4)
    assert "already exists" in one_sentence_error(
        run("model", "promote", dup, "--models-dir", registry)
    )
    assert "does not exist" in one_sentence_error(
        run("model", "promote", tmp_path / "none", "--models-dir", registry)
    )
    assert "--min-improvement" in one_sentence_error(
        run("model", "promote", dup, "--models-dir", registry, "--min-improvement", "-1")
    )


# --- index --------------------------------------------------------------------------------


def test_index_write_then_read_fresh_then_stale(registry: Path, make_bundle: BundleFactory) -> None:
    result = run("model", "index", "--models-dir", registry)
    assert result.exit_code == 0
    assert "3 ranked, 2 excluded, best c" in result.stdout
    cache = read_index_cache(registry)
    assert cache is not None and cache.best_model_id == "c"

    fresh = run_json("model", "index", "--read", "--models-dir", registry)
    assert fresh["stale"] is False and fresh["index"]["best_model_id"] == "c"
    assert "is fresh" in run("model", "index", "--read", "--models-dir", registry).stdout

    make_bundle("new", seed=11)
    stale = run_json("model", "index", "--read", "--models-dir", registry)
    assert stale["stale"] is True and any("new" in change for change in stale["changes"])
    assert "is stale" in run("model", "index", "--read", "--models-dir", registry).stdout

    summary = run_json("model", "index", "--models-dir", registry)
    assert summary["ranked"] == 4 and summary["best_model_id"] == "c"


def test_index_read_missing(registry: Path) -> None:
    line = one_sentence_error(run("model", "index", "--read", "--models-dir", registry))
    assert "taskclf model index" in line


# --- verify -------------------------------------------------------------------------------


def test_verify_healthy_exit_0(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    _activate(models_dir, "a")
    assert run("model", "index", "--models-dir", models_dir).exit_code == 0

    result = run("model", "verify", "--models-dir", models_dir)

    assert result.exit_code == 0, result.stdout
    assert "Healthy" in result.stdout
    assert run_json("model", "verify", "--models-dir", models_dir)["healthy"] is True


def test_verify_unhealthy_one_line_per_finding(registry: Path) -> None:
    (registry / "active.json").write_text("{ torn")

    result = run("model", "verify", "--models-dir", registry)

    assert result.exit_code == 1
    findings = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("error:", "warning:", "info:"))
    ]
    assert any("bundle-invalid [broken]" in line for line in findings)
    assert any("pointer-invalid" in line for line in findings)
    report = json.loads(run("model", "verify", "--json", "--models-dir", registry).stdout)
    assert report["healthy"] is False
    assert len(findings) == len(report["findings"])


def test_verify_missing_registry(tmp_path: Path) -> None:
    result = run("model", "verify", "--models-dir", tmp_path / "nope")
    assert result.exit_code == 1
    assert "registry-missing" in result.stdout


# --- prune --------------------------------------------------------------------------------


PRUNE_TOP_1 = ["model", "prune", "--keep", "1", "--keep-history", "0"]


def test_prune_dry_run_changes_nothing(registry: Path) -> None:
    _activate(registry, "a")

    args = [*PRUNE_TOP_1, "--models-dir", str(registry), "--dry-run"]
    result = run(*args)

    assert result.exit_code == 0
    assert "Would delete 2 of 5 bundles" in result.stdout  # b and alien; a active, c top 1
    assert sorted(p.name for p in registry.iterdir() if p.is_dir()) == [
        "a", "alien", "b", "broken", "c"
    ]  # fmt: skip
    plan = run_json(*args)
    assert plan["executed"] is False
    assert {d["model_id"] for d in plan["decisions"] if d["action"] == "delete"} == {"b", "alien"}


def test_prune_refuses_without_yes_when_not_a_terminal(registry: Path) -> None:
    line = one_sentence_error(run("model", "prune", "--keep", "1", "--models-dir", registry))

    assert "--yes" in line
    assert (registry / "b").is_dir()


def test_prune_yes_deletes(registry: Path) -> None:
    _activate(registry, "a")
    data = run_json(
        "model", "prune", "--keep", "1", "--keep-history", "0", "--models-dir", registry, "--yes"
    )

    assert data["executed"] is True
    assert not (registry / "b").exists() and not (registry / "alien").exists()
    assert (registry / "a").is_dir() and (registry / "broken").is_dir()


def test_prune_asks_on_a_terminal(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _activate(registry, "a")
    monkeypatch.setattr(options, "stdin_is_terminal", lambda: True)
    args: list[str | Path] = ["model", "prune", "--keep", "1", "--keep-history", "0"]
    args += ["--models-dir", registry]

    declined = run(*args, stdin="n\n")
    assert declined.exit_code == 1 and "nothing was deleted" in declined.stderr
    assert (registry / "b").is_dir()

    accepted = run(*args, stdin="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert "Deleted 2 of 5 bundles" in accepted.stdout
    assert not (registry / "b").exists()


@pytest.mark.parametrize("bad", [["--keep", "-1"], ["--keep", "1", "--keep-history", "-2"]])
def test_prune_bad_values(registry: Path, bad: list[str]) -> None:
    one_sentence_error(run("model", "prune", *bad, "--models-dir", registry))


def test_prune_nothing_to_delete(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    result = run("model", "prune", "--keep", "5", "--models-dir", models_dir)
    assert result.exit_code == 0
    assert "Would delete 0 of 1 bundles" in result.stdout


def test_prune_removes_stale_leftovers_without_asking(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("a", seed=1)
    stale = models_dir / ".active.json.x1y2.tmp"
    stale.write_text("{")
    os.utime(stale, (1_000_000_000, 1_000_000_000))  # 2001: long abandoned

    dry = run("model", "prune", "--keep", "5", "--models-dir", models_dir, "--dry-run")
    assert dry.exit_code == 0 and "Would remove 1 stale leftover(s)" in dry.stdout
    assert stale.exists()

    # Not a terminal and no --yes: still fine, no bundle is deleted.
    result = run("model", "prune", "--keep", "5", "--models-dir", models_dir)
    assert result.exit_code == 0, result.stderr
    assert "Removed 1 stale leftover(s) of interrupted operations" in result.stdout
    assert not stale.exists() and (models_dir / "a").is_dir()


# --- error policy -------------------------------------------------------------------------


def test_usage_errors_keep_exit_code_2(registry: Path) -> None:
    assert run("train", "list", "--bogus").exit_code == 2
    assert run("model", "history", "--limit", "many", "--models-dir", registry).exit_code == 2
    assert run("model", "prune", "--models-dir", registry).exit_code == 2  # --keep is required


def test_debug_shows_traceback_default_does_not(registry: Path) -> None:
    args = ["model", "set-active", "--model-id", "ghost", "--models-dir", str(registry)]
    plain = run(*args)
    one_sentence_error(plain)

    debug = run("--debug", *args)
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ActivationError" in debug.stderr

    env = run(*args, env={"TASKCLF_DEBUG": "1"})
    assert "Traceback (most recent call last)" in env.stderr


def test_oserror_on_registry_file_is_one_sentence(registry: Path) -> None:
    (registry / "active.json").mkdir()  # a directory where the pointer file belongs

    line = one_sentence_error(
        run("model", "set-active", "--model-id", "a", "--models-dir", registry)
    )

    assert "active.json" in line
