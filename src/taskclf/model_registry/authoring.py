"""Building a complete, sealed bundle from a training run's outputs (``save_bundle``).

The bundle is assembled in a dot-prefixed staging directory beside its
destination (scans ignore dot-directories), fsynced, and renamed into
place in one step that never replaces anything, so a scan sees the whole
bundle or none of it, and an existing bundle is never overwritten. Any
failure, a KeyboardInterrupt included, removes the staging directory; a
hard crash (SIGKILL, power loss) can leave only that ``.staging-*``
directory, which scans skip and ``verify`` reports.

Defaults for training facts a user may not have (documented in
docs/operators-guide.md): ``params`` ``{}``; ``dataset_hash``,
``train_date_from`` and ``train_date_to`` ``"unknown"``; ``git_commit``
the ``HEAD`` of the git repository around the current directory, else
``"unknown"``; ``created_at`` now, in UTC.

``metadata.json`` also carries taskclf extensions that §2's readers
ignore: ``model_format`` (how to load the artifacts, e.g.
``"lightgbm-text"``, ``"sklearn-skops"``, or null), ``model_files`` (the
artifacts' paths relative to the bundle) and ``test_date_from`` /
``test_date_to`` (null when not given).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import operator
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, SupportsIndex

from pydantic import ValidationError

from taskclf.core import metrics as core_metrics
from taskclf.core.model_io import ModelMetadata
from taskclf.core.schema import get_feature_schema
from taskclf.core.types import CoreLabel
from taskclf.model_registry._fs import (
    absolute,
    fsync_dir,
    fsync_tree,
    read_capped,
    rename_noreplace,
)
from taskclf.model_registry.errors import AuthoringError
from taskclf.model_registry.manifest import MANIFEST_FILE, build_manifest, write_manifest
from taskclf.model_registry.models import BundleMetrics, ModelBundle
from taskclf.model_registry.scan import (
    METADATA_FILE,
    METRICS_FILE,
    describe_errors,
    is_bundle_name,
    looks_like_bundle,
    read_bundle,
    registry_entry,
)

CONFUSION_MATRIX_FILE = "confusion_matrix.csv"
STAGING_PREFIX = ".staging-"
UNKNOWN = "unknown"
DEFAULT_LABELS: tuple[str, ...] = tuple(label.value for label in CoreLabel)
"""taskclf's 8 labels in ``CoreLabel`` order: the default label list of a bundle."""

_GENERATED = frozenset({METADATA_FILE, METRICS_FILE, CONFUSION_MATRIX_FILE, MANIFEST_FILE})
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_PREDICTIONS_CAP = 1 << 30
"""A predictions CSV may be large (one row per evaluated sample); 1 GiB is read whole at most."""
_GIT_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")

Artifacts = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def save_bundle(
    bundle_dir: str | os.PathLike[str],
    artifacts: Artifacts,
    *,
    schema_version: str,
    y_true: Iterable[Hashable] | None = None,
    y_pred: Iterable[Hashable] | None = None,
    confusion_matrix: Iterable[Iterable[SupportsIndex]] | None = None,
    labels: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    dataset_hash: str | None = None,
    train_date_from: str | None = None,
    train_date_to: str | None = None,
    test_date_from: str | None = None,
    test_date_to: str | None = None,
    git_commit: str | None = None,
    model_format: str | None = None,
    data_provenance: Literal["real", "synthetic", "mixed"] = "real",
    reject_threshold: float | None = None,
    created_at: str | datetime | None = None,
    schema_hash: str | None = None,
) -> ModelBundle:
    """Write a complete, sealed bundle at ``bundle_dir`` (which must not exist).

    Args:
        bundle_dir: The bundle directory to create; its name is the model id.
            Its parent is created if missing.
        artifacts: The model file(s): one file, a list of files (copied to the
            bundle's top level under their own names), or one directory whose
            tree is copied as the bundle's content. Paths named here are
            followed if they are symlinks; inside a copied directory, symlinks
            and special files are refused.
        schema_version: The feature schema the model was trained on; its hash
            comes from the schema registry.
        y_true: True labels of the evaluation set (with ``y_pred``); any
            iterable, e.g. a numpy array.
        y_pred: Predicted labels, aligned with ``y_true``.
        confusion_matrix: Instead of ``y_true``/``y_pred``: rows true labels,
            columns predicted, in ``labels`` order (integers, numpy's included).
        labels: The label set, in matrix order (default: taskclf's 8 labels
            in ``CoreLabel`` order); also ``metadata.label_set``.
        params: Training parameters (default ``{}``).
        dataset_hash: Identifies the training data (default ``"unknown"``).
        train_date_from: Start of the training data (default ``"unknown"``).
        train_date_to: End of the training data (default ``"unknown"``).
        test_date_from: Start of the evaluation data (extension key; default null).
        test_date_to: End of the evaluation data (extension key; default null).
        git_commit: Code version (default: ``git rev-parse HEAD`` in the current
            directory, else ``"unknown"``).
        model_format: How to load the artifacts, e.g. ``"lightgbm-text"`` or
            ``"sklearn-skops"`` (extension key; default null).
        data_provenance: ``"real"``, ``"synthetic"`` or ``"mixed"``.
        reject_threshold: Optional abstention threshold of the classifier.
        created_at: Creation time (default now, UTC); a naive datetime is taken as UTC.
        schema_hash: Override the registry's hash for ``schema_version`` (for a
            schema the built-in registry does not know).

    Returns:
        The bundle as the registry parses it; ready for ``promote_bundle``.

    Raises:
        AuthoringError: (a ``ValueError``) bad input (both or neither
            evaluation form, a label outside ``labels``, an unknown schema
            version, a missing or symlinked artifact, a name clash) or
            ``bundle_dir`` exists; nothing is written.
        OSError: Copying or writing failed; nothing is left behind.
    """
    target = absolute(bundle_dir)
    model_id = target.name

    def refuse(reason: str) -> AuthoringError:
        return AuthoringError(model_id, target, reason)

    if not is_bundle_name(model_id) or model_id in _GENERATED:
        raise refuse(
            "a bundle directory's name is its model id and may not start with '.' (scans skip "
            "those); choose another directory name"
        )
    if os.path.lexists(target):
        raise refuse("it already exists; bundles are never overwritten, choose another directory")
    _refuse_inside_registry(target, refuse)
    plan = _plan_artifacts(artifacts, refuse)
    label_list = list(labels) if labels is not None else list(DEFAULT_LABELS)
    metrics = _metrics(y_true, y_pred, confusion_matrix, label_list, refuse)
    metadata = _metadata(
        schema_version=schema_version,
        schema_hash=schema_hash,
        labels=label_list,
        params=params,
        dataset_hash=dataset_hash,
        train_date_from=train_date_from,
        train_date_to=train_date_to,
        git_commit=git_commit,
        data_provenance=data_provenance,
        reject_threshold=reject_threshold,
        created_at=created_at,
        refuse=refuse,
    )
    metadata_doc = metadata.model_dump(mode="json")
    metadata_doc.update(
        model_format=model_format,
        model_files=[relative for relative, _, _ in plan],
        test_date_from=test_date_from,
        test_date_to=test_date_to,
    )

    created_parent = not os.path.lexists(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target.parent))
    staged = staging / model_id
    try:
        staged.mkdir()
        _write_new(staged / METRICS_FILE, _json_bytes(metrics.model_dump(mode="json")))
        _write_new(staged / CONFUSION_MATRIX_FILE, _matrix_csv(metrics))
        for relative, source, follow in plan:
            _copy_artifact(source, staged / relative, follow=follow)
        _write_new(staged / METADATA_FILE, _json_bytes(metadata_doc))
        write_manifest(staged, build_manifest(staged))
        fsync_tree(staged)
        try:
            rename_noreplace(staged, target)
        except FileExistsError:
            raise refuse(
                "it was created by someone else while this bundle was being written; "
                "nothing was overwritten, choose another directory"
            ) from None
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                target.parent.rmdir()
    bundle = read_bundle(target)
    if bundle is None:
        raise refuse("it vanished right after it was written (deleted by another process)")
    return bundle


def _refuse_inside_registry(target: Path, refuse: Callable[[str], AuthoringError]) -> None:
    """A new bundle never lands in a registry by itself, nor inside another bundle.

    Written straight into ``models/``, it would skip promotion's checks and
    the pointer's overthrow; written inside a sealed bundle, it would break
    that bundle's manifest (and with it the bundle a pointer may serve).
    """
    if registry_entry(target.parent) is not None:
        raise refuse(
            f"{target.parent} is a registry; write the bundle elsewhere and promote it "
            "(promote_bundle, or `taskclf model package --promote`)"
        )
    # Inside a registry's bundle at any depth, or directly inside a bundle found elsewhere.
    inside = next((a for a in target.parents if registry_entry(a.parent) is not None), None)
    if inside is None and looks_like_bundle(target.parent):
        inside = target.parent
    if inside is not None:
        raise refuse(f"it would be inside the bundle {inside}; choose a directory outside it")


def _plan_artifacts(artifacts: Artifacts, refuse: Any) -> list[tuple[str, Path, bool]]:
    """``(path in the bundle, source, follow symlinks)`` for every artifact file, sorted."""
    sources = [artifacts] if isinstance(artifacts, (str, os.PathLike)) else list(artifacts)
    if not sources:
        raise refuse("no artifact given; pass the model file(s) or a directory")
    paths = [absolute(source) for source in sources]
    if len(paths) == 1 and os.path.isdir(paths[0]):
        plan = [(relative, path, False) for relative, path in _plan_tree(paths[0], refuse)]
        if not plan:
            raise refuse(f"the artifact directory {paths[0]} holds no file")
    else:
        plan = []
        for path in paths:
            if not os.path.exists(path):
                raise refuse(f"artifact {path} does not exist")
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise refuse(
                    f"artifact {path} is not a regular file (pass one directory alone to copy "
                    "a tree)"
                )
            plan.append((path.name, path, True))
    names = [relative for relative, _, _ in plan]
    clash = sorted({name for name in names if name in _GENERATED})
    if clash:
        raise refuse(
            f"artifact name(s) {', '.join(clash)} are reserved for the files save_bundle writes; "
            "rename the artifact"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise refuse(f"two artifacts are both named {duplicates[0]}; rename one")
    return sorted(plan)


def _plan_tree(root: Path, refuse: Any) -> list[tuple[str, Path]]:
    plan: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise refuse(
                    f"{relative} in {root} is a symlink; copy its target into the directory "
                    "instead (a bundle holds regular files only)"
                )
            if stat.S_ISREG(mode):
                plan.append((relative, path))
            elif not stat.S_ISDIR(mode):
                raise refuse(f"{relative} in {root} is not a regular file or directory")
    return plan


def _metrics(
    y_true: Iterable[Hashable] | None,
    y_pred: Iterable[Hashable] | None,
    matrix: Iterable[Iterable[SupportsIndex]] | None,
    labels: list[str],
    refuse: Any,
) -> BundleMetrics:
    predictions = y_true is not None or y_pred is not None
    if predictions and matrix is not None:
        raise refuse("give either y_true and y_pred or a confusion matrix, not both")
    if predictions:
        if y_true is None or y_pred is None:
            raise refuse("y_true and y_pred must be given together")
        try:
            counted = core_metrics.confusion_matrix(list(y_true), list(y_pred), labels)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        matrix = counted
    elif matrix is None:
        raise refuse(
            "no evaluation given; pass y_true and y_pred, or a confusion matrix and its labels"
        )
    try:
        # operator.index accepts numpy integers (scikit-learn's confusion_matrix returns
        # an ndarray) and refuses floats, which are not counts.
        cells = [[operator.index(cell) for cell in row] for row in matrix]
    except TypeError:
        raise refuse("confusion matrix cells must be integers >= 0") from None
    if not any(any(row) for row in cells):
        # All-zero metrics would rank (0.0) as if the model had been evaluated.
        raise refuse("the evaluation has no samples; evaluate the model on a test set first")
    if len(cells) != len(labels):
        raise refuse(
            f"the confusion matrix has {len(cells)} rows but there are {len(labels)} labels "
            f"({', '.join(labels)}); pass labels= in matrix order"
        )
    try:
        macro, weighted = core_metrics.f1_summary(cells)
        return BundleMetrics(
            macro_f1=macro, weighted_f1=weighted, confusion_matrix=cells, label_names=labels
        )
    except ValidationError as exc:
        raise refuse(f"the metrics are invalid ({describe_errors(exc.errors())})") from None
    except ValueError as exc:
        raise refuse(str(exc)) from None


def _metadata(
    *,
    schema_version: str,
    schema_hash: str | None,
    labels: list[str],
    params: dict[str, Any] | None,
    dataset_hash: str | None,
    train_date_from: str | None,
    train_date_to: str | None,
    git_commit: str | None,
    data_provenance: str,
    reject_threshold: float | None,
    created_at: str | datetime | None,
    refuse: Any,
) -> ModelMetadata:
    if schema_hash is None:
        try:
            schema_hash = get_feature_schema(schema_version).SCHEMA_HASH
        except ValueError as exc:
            raise refuse(f"{exc}; pass schema_hash= for a schema of your own") from None
    if isinstance(created_at, datetime):
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        created_at = created_at.isoformat()
    elif created_at is None:
        created_at = datetime.now(UTC).isoformat()
    else:
        try:
            datetime.fromisoformat(created_at)
        except ValueError:
            raise refuse(f"created_at {created_at!r} is not an ISO-8601 timestamp") from None
    try:
        return ModelMetadata(
            schema_version=schema_version,
            schema_hash=schema_hash,
            label_set=labels,
            train_date_from=train_date_from or UNKNOWN,
            train_date_to=train_date_to or UNKNOWN,
            params=dict(params) if params is not None else {},
            git_commit=git_commit or current_git_commit(),
            dataset_hash=dataset_hash or UNKNOWN,
            reject_threshold=reject_threshold,
            data_provenance=data_provenance,  # type: ignore[arg-type]
            created_at=created_at,
        )
    except ValidationError as exc:
        raise refuse(f"the metadata is invalid ({describe_errors(exc.errors())})") from None


def current_git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """``git rev-parse HEAD`` of the repository around ``cwd``; ``"unknown"`` without one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and _GIT_COMMIT.match(commit) else UNKNOWN


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def _matrix_csv(metrics: BundleMetrics) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true\\pred", *metrics.label_names])
    for label, row in zip(metrics.label_names, metrics.confusion_matrix, strict=True):
        writer.writerow([label, *row])
    return out.getvalue().encode()


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (never existing: we own the staging directory) with ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _copy_artifact(source: Path, destination: Path, *, follow: bool) -> None:
    """Copy one regular file's content; inside a copied tree, never through a symlink."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDONLY | (0 if follow else _NOFOLLOW) | os.O_NONBLOCK
    fd = os.open(source, flags)
    with os.fdopen(fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
            raise OSError(f"{source} is no longer a regular file")
        out = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        with os.fdopen(out, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)


def read_predictions_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Read ``y_true,y_pred`` pairs from a CSV file with a header row (``taskclf model package``).

    The header must name the columns ``y_true`` and ``y_pred`` (in any
    order; other columns are ignored). Every row needs both values.

    Returns:
        ``(y_true, y_pred)``.

    Raises:
        ValueError: One sentence naming the file and, for a bad row, its line number.
        OSError: The file cannot be read.
    """
    shown = os.fspath(path)
    raw = read_capped(path, cap=_PREDICTIONS_CAP)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"Line {line} of {shown} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{shown} is empty; it needs a header row y_true,y_pred")
        columns = [name.strip() for name in header]
        missing = [name for name in ("y_true", "y_pred") if name not in columns]
        if missing:
            raise ValueError(
                f"Line 1 of {shown} is the header {','.join(columns)!r}, which lacks the "
                f"column(s) {', '.join(missing)}; the header must name y_true and y_pred"
            )
        true_at, pred_at = columns.index("y_true"), columns.index("y_pred")
        y_true: list[str] = []
        y_pred: list[str] = []
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise ValueError(
                    f"Line {line} of {shown} has {len(row)} field(s) but the header has "
                    f"{len(columns)}; each row needs y_true and y_pred"
                )
            true, predicted = row[true_at].strip(), row[pred_at].strip()
            if not true or not predicted:
                raise ValueError(f"Line {line} of {shown} has an empty y_true or y_pred")
            y_true.append(true)
            y_pred.append(predicted)
    except csv.Error as exc:
        raise ValueError(f"Line {reader.line_num} of {shown} is not valid CSV ({exc})") from None
    if not y_true:
        raise ValueError(f"{shown} has a header but no prediction rows")
    return y_true, y_pred


def check_prediction_labels(
    path: str | os.PathLike[str],
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
) -> None:
    """Raise naming the CSV line of the first label outside ``labels`` (rows start on line 2).

    Raises:
        ValueError: One sentence naming the file, the line and the label.
    """
    known = set(labels)
    for index, pair in enumerate(zip(y_true, y_pred, strict=True)):
        for column, label in zip(("y_true", "y_pred"), pair, strict=True):
            if label not in known:
                raise ValueError(
                    f"Line {index + 2} of {os.fspath(path)} has {column} {label!r}, which is not "
                    f"one of the labels ({', '.join(labels)}); list every label the model predicts"
                )


def read_confusion_matrix_json(
    path: str | os.PathLike[str],
) -> tuple[list[list[int]], list[str] | None]:
    """Read a confusion matrix: a JSON list of rows, or an object like ``metrics.json``.

    The object form takes ``confusion_matrix`` and, if present, ``label_names``.

    Returns:
        ``(matrix, label names or None)``.

    Raises:
        ValueError: One sentence naming the file and what is wrong.
        OSError: The file cannot be read.
    """
    shown = os.fspath(path)
    try:
        document = json.loads(read_capped(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{shown} is not JSON ({exc})") from None
    labels = None
    if isinstance(document, dict):
        labels = document.get("label_names")
        document = document.get("confusion_matrix")
    if not (
        isinstance(document, list)
        and all(isinstance(row, list) for row in document)
        and all(
            isinstance(cell, int) and not isinstance(cell, bool) for row in document for cell in row
        )
    ):
        raise ValueError(
            f"{shown} holds no confusion matrix: expected a list of rows of integers, or an "
            'object with "confusion_matrix" (and "label_names")'
        )
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(label, str) for label in labels)
    ):
        raise ValueError(f'{shown} has a "label_names" that is not a list of strings')
    return document, labels
