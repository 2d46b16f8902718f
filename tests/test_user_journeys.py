"""What a new user meets: narrow terminals, a misdirected ``$TASKCLF_MODELS_DIR``.

Each test replays a friction point found by following the README and the
operator's guide on a fresh clone, on a real registry in ``tmp_path``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner, Result

from taskclf.cli.main import app
from taskclf.model_registry import promote_bundle

if TYPE_CHECKING:
    from conftest import BundleFactory

LONG_ID = "2026-02-19_013000_run-0044"
OTHER_ID = "2026-02-12_110000_run-0040"


def run(*args: str | Path, columns: int | None = None, env: dict[str, str] | None = None) -> Result:
    environ: dict[str, str | None] = {"COLUMNS": None if columns is None else str(columns)}
    environ.update(env or {})
    return CliRunner(env=environ).invoke(app, [str(a) for a in args])


def table_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line[:1] in "┏┃┡│└"]


def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Two long-named bundles, one incompatible, and an active pointer with history."""
    make_bundle(LONG_ID, accuracy=0.9, seed=1)
    make_bundle(OTHER_ID, accuracy=0.8, seed=2)
    make_bundle("2026-02-17_170000_run-0042", accuracy=0.85, seed=3, schema_hash="9c1e2f7a0b3d")
    for model_id in (OTHER_ID, LONG_ID):
        assert run("model", "set-active", "--model-id", model_id, "--models-dir", models_dir)
    return models_dir


def test_train_list_at_80_columns_keeps_ids_marker_and_notes_whole(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    # Found: at COLUMNS=80 rich cropped ids to '2026-02-19_013000_ru', the active '*'
    # column shrank to nothing and the notes column disappeared.
    registry(models_dir, make_bundle)

    result = run("train", "list", "--models-dir", models_dir, columns=80)

    assert result.exit_code == 0, result.output
    lines = table_lines(result.stdout)
    assert lines and all(len(line) <= 80 for line in lines), result.stdout
    assert any(LONG_ID in line and "*" in line for line in lines), result.stdout
    assert any(OTHER_ID in line for line in lines)
    assert "notes" in lines[1] and "incompatible:" in result.stdout
    assert "not shown at width 80: created_at" in result.stdout
    assert "--json" in result.stdout


def test_wide_output_hides_nothing(models_dir: Path, make_bundle: BundleFactory) -> None:
    registry(models_dir, make_bundle)

    result = run("train", "list", "--models-dir", models_dir)  # a pipe: 200 wide

    assert result.exit_code == 0
    header = table_lines(result.stdout)[1]
    for column in ("created_at", "schema_hash", "bi_prec", "min_prec", "weighted_f1", "notes"):
        assert column in header
    assert "not shown" not in result.stdout


def test_history_and_promotion_ranking_at_80_columns_show_whole_ids(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    registry(models_dir, make_bundle)

    history = run("model", "history", "--models-dir", models_dir, columns=80)
    candidate = make_bundle("2026-02-20_090000_run-0045", parent=tmp_path, accuracy=0.7, seed=4)
    promoted = run("model", "promote", candidate, "--models-dir", models_dir, columns=80)

    for result in (history, promoted):
        assert result.exit_code == 0, result.output
        lines = table_lines(result.stdout)
        assert all(len(line) <= 80 for line in lines), result.stdout
        assert any(LONG_ID in line for line in lines), result.stdout
    # Issue 14's actor column (message: none recorded here) is the first to go.
    assert "manual" in history.stdout
    assert "not shown at width 80: actor, from" in history.stdout
    assert re.search(r"2026-02-20_090000_run-0045 +│ +\d\.\d{4}", promoted.stdout)


def test_json_is_unaffected_by_a_narrow_terminal(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    registry(models_dir, make_bundle)

    result = run("train", "list", "--json", "--models-dir", models_dir, columns=40)

    rows = json.loads(result.stdout)
    assert {row["model_id"] for row in rows} >= {LONG_ID, OTHER_ID}
    assert all(row["created_at"] and row["schema_hash"] for row in rows)


def test_missing_registry_from_env_var_blames_the_env_var(tmp_path: Path) -> None:
    # Found: with $TASKCLF_MODELS_DIR pointing nowhere, the advice was to "set
    # $TASKCLF_MODELS_DIR", which is already set.
    wrong = tmp_path / "nope"

    result = run("model", "resolve", env={"TASKCLF_MODELS_DIR": str(wrong)})

    assert result.exit_code == 1
    assert f"Registry not found: {wrong} does not exist" in result.stderr
    assert "comes from $TASKCLF_MODELS_DIR" in result.stderr
    assert "or set $TASKCLF_MODELS_DIR" not in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_registry_from_option_keeps_the_general_advice(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"

    result = run(
        "model",
        "resolve",
        "--models-dir",
        elsewhere,
        env={"TASKCLF_MODELS_DIR": str(tmp_path / "nope")},
    )

    assert result.exit_code == 1
    assert f"Registry not found: {elsewhere} does not exist" in result.stderr
    assert "pass --models-dir DIR or set $TASKCLF_MODELS_DIR" in result.stderr


def test_verify_of_a_missing_registry_mentions_the_env_var(tmp_path: Path) -> None:
    result = run("model", "verify", env={"TASKCLF_MODELS_DIR": str(tmp_path / "nope")})

    assert result.exit_code == 1
    assert "registry-missing" in result.stdout
    assert "$TASKCLF_MODELS_DIR" in result.stdout


def test_readme_promotion_snippet_runs_twice_with_a_clear_error(
    tmp_path: Path, make_bundle: BundleFactory
) -> None:
    # The README snippet, re-run as a new user would: the second run must fail with a
    # PromotionError (a ValueError) that names the taken bundle, not corrupt anything.
    candidate = make_bundle("run-0042", parent=tmp_path / "runs", accuracy=0.9, seed=42)
    models = tmp_path / "registry"
    first = promote_bundle(candidate, models)
    assert first.active_updated

    try:
        promote_bundle(candidate, models)
    except ValueError as exc:
        assert "'run-0042' already exists" in str(exc)
    else:  # pragma: no cover - the assertion below explains the failure
        raise AssertionError("promoting the same bundle twice must fail")
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == [
        "active.json",
        "active_history.jsonl",
        "index.json",
        "run-0042",
    ]


def test_rollback_from_a_hand_broken_pointer_reads_as_a_sentence(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    # Found: "Would roll back from -- to <id>" after a hand edit broke active.json.
    registry(models_dir, make_bundle)
    (models_dir / "active.json").write_text('{"model_dir": "models/' + LONG_ID + '",\n')

    result = run("model", "rollback", "--dry-run", "--models-dir", models_dir)

    assert result.exit_code == 0, result.output
    assert "from --" not in result.stdout
    assert f"Would roll back from no usable active pointer to {LONG_ID}" in result.stdout


def test_promoting_the_same_bundle_twice_says_how_to_rename(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Found: "pass another name" did not say which option takes it.
    candidate = make_bundle("run-0042", parent=tmp_path / "runs", accuracy=0.9, seed=42)
    assert run("model", "promote", candidate, "--models-dir", models_dir).exit_code == 0

    again = run("model", "promote", candidate, "--models-dir", models_dir)
    renamed = run("model", "promote", candidate, "--name", "run-0042b", "--models-dir", models_dir)

    assert again.exit_code == 1
    assert "'run-0042' already exists" in again.stderr
    assert "pass another name with --name" in again.stderr
    assert renamed.exit_code == 0, renamed.output
    assert (models_dir / "run-0042b" / "metrics.json").is_file()


def test_promote_help_does_not_promise_to_activate_the_newcomer() -> None:
    # Found: "activate it if it is now the best", but promotion moves the pointer to the
    # best bundle, which after a rollback can be another one.
    result = run("model", "promote", "--help", columns=200)

    assert result.exit_code == 0
    assert "move the pointer to the best" in result.stdout
    assert "activate it if" not in result.stdout
