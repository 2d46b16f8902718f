"""``taskclf demo``: a guided tour of the registry on a realistic sample, fully offline.

It builds a fresh registry (four valid bundles with real 8-class
confusion matrices, one trained on another feature layout, one cut short
by a crash), then runs what an operator would: list, resolve, promote a
better candidate, history, rollback and verify. Each step is narrated in
one sentence and followed by the same output the real command prints.
It ends by writing the HTML report of the registry (``report.html`` in
the workspace) when the ``report`` extra is installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskclf.samples import write_bundle


class DemoDirectoryError(ValueError):
    """The directory given for the demo is not usable (not empty, or not a directory)."""


@dataclass(frozen=True)
class _SampleRun:
    name: str
    accuracy: float
    seed: int
    created_at: str


# Accuracies are far enough apart that the seeded matrices rank in this order.
_VALID_RUNS = (
    _SampleRun("2026-02-02_091500_run-0038", 0.72, 38, "2026-02-02T09:15:00+00:00"),
    _SampleRun("2026-02-09_143000_run-0039", 0.78, 39, "2026-02-09T14:30:00+00:00"),
    _SampleRun("2026-02-12_110000_run-0040", 0.84, 40, "2026-02-12T11:00:00+00:00"),
    _SampleRun("2026-02-16_084500_run-0041", 0.80, 41, "2026-02-16T08:45:00+00:00"),
)
_INCOMPATIBLE_RUN = _SampleRun("2026-02-17_170000_run-0042", 0.86, 42, "2026-02-17T17:00:00+00:00")
_CORRUPT_RUN = _SampleRun("2026-02-18_020000_run-0043", 0.83, 43, "2026-02-18T02:00:00+00:00")
_CANDIDATE_RUN = _SampleRun("2026-02-19_013000_run-0044", 0.88, 44, "2026-02-19T01:30:00+00:00")
_UNRELEASED_SCHEMA_HASH = "9c1e2f7a0b3d"
"""The hash of a feature layout from an unmerged branch: no released schema has it."""


def prepare_directory(directory: Path | None) -> tuple[Path, Path]:
    """Create the demo's workspace.

    Args:
        directory: The workspace (missing or empty); ``None`` for a new
            temporary directory.

    Returns:
        ``(models_dir, candidates_dir)``: the registry ``<workspace>/models``,
        and ``<workspace>/candidates`` where the "new training run" waits to
        be promoted.

    Raises:
        DemoDirectoryError: ``directory`` exists and is not an empty directory.
    """
    if directory is None:
        base = Path(tempfile.mkdtemp(prefix="taskclf-demo-"))
    else:
        base = Path(os.path.abspath(directory))
        if base.exists() and not base.is_dir():
            raise DemoDirectoryError(
                f"{base} is a file, not a directory; the demo builds its registry in a "
                "new or empty directory"
            )
        if base.exists() and any(base.iterdir()):
            raise DemoDirectoryError(
                f"{base} is not empty; the demo only builds in a new or empty directory"
            )
    models_dir = base / "models"
    candidates = base / "candidates"
    models_dir.mkdir(parents=True, exist_ok=True)
    candidates.mkdir(parents=True, exist_ok=True)
    return models_dir, candidates


def build_sample_registry(models_dir: Path, candidates_dir: Path) -> Path:
    """Write the sample bundles; return the candidate bundle waiting outside the registry."""
    for run in _VALID_RUNS:
        _write(models_dir, run)
    _write(models_dir, _INCOMPATIBLE_RUN, schema_hash=_UNRELEASED_SCHEMA_HASH)
    corrupt = _write(models_dir, _CORRUPT_RUN)
    # The training job died while writing its metrics: a truncated JSON file.
    metrics = corrupt / "metrics.json"
    raw = metrics.read_bytes()
    metrics.write_bytes(raw[: len(raw) // 3])
    return _write(candidates_dir, _CANDIDATE_RUN)


def _write(parent: Path, run: _SampleRun, schema_hash: str | None = None) -> Path:
    return write_bundle(
        parent / run.name,
        accuracy=run.accuracy,
        seed=run.seed,
        created_at=run.created_at,
        schema_hash=schema_hash,
    )


@contextlib.contextmanager
def _quiet_registry_logs() -> Iterator[None]:
    """The narration explains the repairs; the library's warnings would only repeat it."""
    logger = logging.getLogger("taskclf")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def run_demo(directory: Path | None = None, *, json_mode: bool = False) -> Path:
    """Build the sample registry and walk through the operator's commands.

    Args:
        directory: Where to build (missing or empty); default a temporary directory.
        json_mode: Print one JSON document with every step's result instead of prose.

    Returns:
        The registry directory that was built.

    Raises:
        DemoDirectoryError: ``directory`` is not empty.
    """
    from taskclf.cli import output
    from taskclf.cli.model import explain_promotion, resolution_view
    from taskclf.model_registry import (
        promote_bundle,
        read_active_history,
        resolve_active_model,
    )
    from taskclf.model_registry.activation import execute_rollback, plan_rollback
    from taskclf.model_registry.listing import list_rows
    from taskclf.model_registry.verify import verify_registry

    models_dir, candidates_dir = prepare_directory(directory)
    candidate = build_sample_registry(models_dir, candidates_dir)
    steps: list[dict[str, Any]] = []
    where = f"--models-dir {models_dir}"

    def step(narration: str, command: str, result: Any) -> None:
        steps.append({"narration": narration, "command": command, "result": result})
        if not json_mode:
            output.say("")
            output.say(narration)
            output.say(f"$ {command}")

    if not json_mode:
        output.say(f"Building a sample registry in {models_dir} ...")

    with _quiet_registry_logs():
        rows = list_rows(models_dir)
        step(
            f"The registry holds {len(rows)} bundles: 4 valid training runs, one trained on an "
            "unreleased feature layout (incompatible) and one whose metrics.json a crash cut "
            "short (invalid); `train list` ranks them and says why two are not eligible.",
            f"taskclf train list {where}",
            output.bundle_rows_json(rows),
        )
        if not json_mode:
            output.render_bundle_rows(rows)

        bundle, report = resolve_active_model(models_dir)
        assert bundle is not None
        data, detail = resolution_view(models_dir, bundle, report)
        step(
            "There is no active.json yet, so resolving the active model scans the registry, "
            "picks the best eligible bundle and writes the pointer.",
            f"taskclf model resolve {where}",
            data,
        )
        if not json_mode:
            output.render_resolution(data["active"], data["source"], detail)

        result = promote_bundle(candidate, models_dir)
        explanation = explain_promotion(result, 0.0)
        step(
            "A new training run finished with a better model: promoting it copies it in "
            "atomically, re-ranks the registry and moves the pointer because it is now the best.",
            f"taskclf model promote {candidate} {where}",
            output.promotion_json(result, explanation),
        )
        if not json_mode:
            output.render_promotion(result.bundle, result.report, explanation)

        entries = list(reversed(read_active_history(models_dir)))
        step(
            "Every pointer change is appended to active_history.jsonl, newest first here.",
            f"taskclf model history {where}",
            output.history_json(entries),
        )
        if not json_mode:
            output.render_history(entries)

        plan = plan_rollback(models_dir)
        pointer = execute_rollback(models_dir, plan)
        step(
            "Suppose the new model misbehaves in production: one command rolls the pointer "
            "back to the previously active model, and the history records it.",
            f"taskclf model rollback {where}",
            output.rollback_json(plan, pointer),
        )
        if not json_mode:
            output.render_rollback(plan, pointer)

        verify_report = verify_registry(models_dir)
        step(
            "Finally a health check, as cron or CI would run it: the crashed bundle is an error, "
            "so this exits 1 until it is fixed or pruned with --include-invalid.",
            f"taskclf model verify {where}",
            verify_report.model_dump(mode="json"),
        )
        if not json_mode:
            output.render_verify(verify_report)

    report_path, report_hint = _write_report(models_dir)
    if json_mode:
        output.emit_json(
            {
                "models_dir": str(models_dir),
                "steps": steps,
                "report": None if report_path is None else str(report_path),
            }
        )
    else:
        output.say("")
        output.say(f"Explore further: taskclf train list --models-dir {models_dir}")
        if report_path is not None:
            output.say(f"See the registry: open {report_path}")
        else:
            output.say(report_hint)
    return models_dir


def _write_report(models_dir: Path) -> tuple[Path | None, str]:
    """The HTML report of the demo registry beside it, or ``None`` and how to get one."""
    from taskclf.model_registry import ReportExtraMissingError
    from taskclf.report import write_report

    try:
        with _quiet_registry_logs():
            return write_report(models_dir, models_dir.parent / "report.html"), ""
    except ReportExtraMissingError:
        return None, (
            "For an HTML report of this registry install the report extra: "
            "pip install 'taskclf[report]' (then: taskclf report --models-dir "
            f"{models_dir})"
        )
