"""One bundle in full, and what differs between two (``taskclf model show`` / ``model diff``).

Reads only: the bundle's files (through the scan), its directory listing
for file sizes, its manifest (sizes only unless ``deep``), the pointer and
the registry's configuration. Comparison is pure: two descriptions in,
differences out.

Decisions:

- ``schema_known`` is True when the registry's configuration knows the
  declared ``schema_version`` *and* the bundle carries that version's
  hash; ``expected_schema_hash`` shows the hash it should carry.
- Eligibility is ``train list``'s without ``--schema-hash``: compatible with
  its own declared schema and the registry's labels, and passing the policy
  constraints. ``reason`` is the exact exclusion reason; ``reason_detail``
  adds the missing and extra labels or the hashes involved.
- Per-class scores come from the confusion matrix in ``metrics.json``
  (:func:`taskclf.core.metrics.class_scores`), labelled by its
  ``label_names``, so they describe the evaluation as recorded.
- ``files`` lists every non-directory entry below the bundle (symlinks
  not followed, listed with their own size), sorted by path.
- A diff compares fields by name: ``params.<key>``, ``classes.<label>.<score>``
  and ``files.<path>`` are compared one by one, a side that lacks the key
  shows ``null``. Ids and paths always differ and are not listed.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from taskclf.core.metrics import class_scores
from taskclf.model_registry.config import RegistryConfig, load_registry_config
from taskclf.model_registry.errors import BundleNotFoundError
from taskclf.model_registry.models import ModelBundle, SelectionPolicy
from taskclf.model_registry.pointer import locate_active_bundle
from taskclf.model_registry.scan import METADATA_FILE, is_bundle_name
from taskclf.model_registry.selection import (
    declared_incompatibility,
    explain_incompatibility,
    passes_constraints,
)
from taskclf.model_registry.storage import Storage, open_storage

_EXTENSIONS = ("model_format", "model_files", "test_date_from", "test_date_to")


class ClassReport(BaseModel):
    """One class's scores, read off the bundle's confusion matrix."""

    model_config = ConfigDict(frozen=True)

    label: str
    precision: float
    recall: float
    f1: float
    support: int


class BundleFile(BaseModel):
    """One file of the bundle."""

    model_config = ConfigDict(frozen=True)

    path: str
    """Relative to the bundle, ``/``-separated."""
    size: int
    kind: Literal["file", "symlink", "other"] = "file"


class ManifestSummary(BaseModel):
    """The bundle against its ``manifest.json``."""

    model_config = ConfigDict(frozen=True)

    status: Literal["unsealed", "match", "mismatch"]
    deep: bool
    """Whether file contents were hashed (otherwise presence, type and sizes)."""
    problems: list[str] = []
    """``<file>: <problem>`` per problem found."""


class BundleDescription(BaseModel):
    """Everything ``taskclf model show`` says about a bundle."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_id: str
    path: str
    valid: bool
    invalid_reason: str | None = None
    created_at: str | None = None
    train_date_from: str | None = None
    train_date_to: str | None = None
    test_date_from: str | None = None
    test_date_to: str | None = None
    git_commit: str | None = None
    dataset_hash: str | None = None
    data_provenance: str | None = None
    reject_threshold: float | None = None
    params: dict[str, Any] = {}
    schema_version: str | None = None
    schema_hash: str | None = None
    expected_schema_hash: str | None = None
    """The hash the registry knows for ``schema_version`` (``None``: unknown version)."""
    schema_known: bool = False
    label_set: list[str] | None = None
    model_format: str | None = None
    model_files: list[str] | None = None
    macro_f1: float | None = None
    weighted_f1: float | None = None
    classes: list[ClassReport] = []
    files: list[BundleFile] = []
    total_bytes: int = 0
    manifest: ManifestSummary
    active: bool = False
    eligible: bool = False
    reason: str | None = None
    """Why it is not eligible: the exact exclusion reason, else ``None``."""
    reason_detail: str | None = None
    """``reason`` with the labels or hashes involved."""


class FieldDifference(BaseModel):
    """One field whose value differs between two bundles."""

    model_config = ConfigDict(frozen=True)

    field: str
    a: Any
    b: Any


class BundleDiff(BaseModel):
    """Two bundles and the fields in which they differ."""

    model_config = ConfigDict(frozen=True)

    a: BundleDescription
    b: BundleDescription
    differences: list[FieldDifference]

    @property
    def identical(self) -> bool:
        """No compared field differs."""
        return not self.differences


def describe_bundle(
    models_dir: str | os.PathLike[str],
    model_id: str,
    *,
    deep: bool = False,
    config: RegistryConfig | None = None,
) -> BundleDescription:
    """Describe ``models_dir/model_id``: training facts, schema, labels, scores, files, state.

    Args:
        models_dir: The registry directory.
        model_id: The bundle directory name.
        deep: Hash the files for the manifest check (default: sizes only).
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The description; an invalid bundle is described too (``valid`` False,
        with what could be read).

    Raises:
        BundleNotFoundError: (a ``ValueError``) no such bundle directory.
        RegistryConfigError: The registry's configuration is malformed.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    path = root / model_id
    if not is_bundle_name(model_id) or not storage.has_bundle(model_id):
        raise BundleNotFoundError(model_id, path, "no such bundle directory")
    bundle = storage.read_bundle(model_id)
    if bundle is None:
        raise BundleNotFoundError(model_id, path, "it vanished while it was read")
    config = config if config is not None else load_registry_config(root)
    active = locate_active_bundle(root) == path
    return _describe(storage, bundle, config, active=active, deep=deep)


def _describe(
    storage: Storage, bundle: ModelBundle, config: RegistryConfig, *, active: bool, deep: bool
) -> BundleDescription:
    metadata, metrics = bundle.metadata, bundle.metrics
    schemas = config.schema_hashes
    values: dict[str, Any] = {
        "model_id": bundle.model_id,
        "path": str(bundle.path),
        "valid": bundle.valid,
        "invalid_reason": bundle.invalid_reason,
        "active": active,
    }
    if metadata is not None:
        expected = schemas.get(metadata.schema_version)
        values.update(
            created_at=metadata.created_at,
            train_date_from=metadata.train_date_from,
            train_date_to=metadata.train_date_to,
            git_commit=metadata.git_commit,
            dataset_hash=metadata.dataset_hash,
            data_provenance=metadata.data_provenance,
            reject_threshold=metadata.reject_threshold,
            params=metadata.params,
            schema_version=metadata.schema_version,
            schema_hash=metadata.schema_hash,
            expected_schema_hash=expected,
            schema_known=expected is not None and expected == metadata.schema_hash,
            label_set=metadata.label_set,
        )
        values.update(_extensions(storage, bundle.model_id))
    if metrics is not None:
        scores = class_scores(metrics.confusion_matrix)
        values.update(
            macro_f1=metrics.macro_f1,
            weighted_f1=metrics.weighted_f1,
            classes=[
                ClassReport(
                    label=metrics.label_names[s.label_index],
                    precision=s.precision,
                    recall=s.recall,
                    f1=s.f1,
                    support=s.support,
                )
                for s in scores
            ],
        )
    files = sorted(
        (
            BundleFile(path=name, size=size, kind=kind)
            for name, size, kind in storage.bundle_files(bundle.model_id)
        ),
        key=lambda f: f.path,
    )
    problem = declared_incompatibility(bundle, config.labels, schemas)
    eligible = problem is None and passes_constraints(bundle, SelectionPolicy())
    if problem is None and not eligible:
        problem = "constraint: failed policy constraints"
    check = storage.check_manifest(bundle.model_id, deep=deep)
    values.update(
        files=files,
        total_bytes=sum(f.size for f in files),
        manifest=ManifestSummary(
            status=check.status,
            deep=deep,
            problems=[f"{p.file}: {p.problem}" for p in check.problems],
        ),
        eligible=eligible,
        reason=problem,
        reason_detail=(
            explain_incompatibility(bundle, problem, config.labels, schemas) if problem else None
        ),
    )
    return BundleDescription(**values)


def _extensions(storage: Storage, model_id: str) -> dict[str, Any]:
    """``save_bundle``'s extension keys, each kept only when it has the expected shape."""
    try:
        document = json.loads(storage.read(f"{model_id}/{METADATA_FILE}")[0])
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    found: dict[str, Any] = {}
    for key in _EXTENSIONS:
        value = document.get(key)
        if key == "model_files":
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                found[key] = value
        elif isinstance(value, str):
            found[key] = value
    return found


def diff_bundles(
    models_dir: str | os.PathLike[str],
    a: str,
    b: str,
    *,
    deep: bool = False,
    config: RegistryConfig | None = None,
) -> BundleDiff:
    """Describe bundles ``a`` and ``b`` of ``models_dir`` and list what differs.

    Args:
        models_dir: The registry directory.
        a: The first bundle id.
        b: The second bundle id.
        deep: Hash the files for the manifest checks.
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        Both descriptions and the differing fields, in display order.

    Raises:
        BundleNotFoundError: Either bundle does not exist.
        RegistryConfigError: The registry's configuration is malformed.
    """
    root = open_storage(models_dir).root_path
    config = config if config is not None else load_registry_config(root)
    first = describe_bundle(root, a, deep=deep, config=config)
    second = describe_bundle(root, b, deep=deep, config=config)
    return BundleDiff(a=first, b=second, differences=compare_descriptions(first, second))


_SCALARS = (
    "valid",
    "invalid_reason",
    "eligible",
    "reason",
    "active",
    "created_at",
    "macro_f1",
    "weighted_f1",
    "schema_version",
    "schema_hash",
    "schema_known",
    "label_set",
    "dataset_hash",
    "git_commit",
    "train_date_from",
    "train_date_to",
    "test_date_from",
    "test_date_to",
    "data_provenance",
    "reject_threshold",
    "model_format",
    "model_files",
)
_SCORES = ("precision", "recall", "f1", "support")


def compare_descriptions(a: BundleDescription, b: BundleDescription) -> list[FieldDifference]:
    """The fields in which two descriptions differ (pure), in display order."""
    pairs: list[tuple[str, Any, Any]] = [
        (name, getattr(a, name), getattr(b, name)) for name in _SCALARS
    ]
    pairs += _keyed("params", a.params, b.params)
    pairs += _keyed(
        "classes",
        {f"{c.label}.{score}": getattr(c, score) for c in a.classes for score in _SCORES},
        {f"{c.label}.{score}": getattr(c, score) for c in b.classes for score in _SCORES},
    )
    pairs.append(("total_bytes", a.total_bytes, b.total_bytes))
    pairs += _keyed("files", {f.path: f.size for f in a.files}, {f.path: f.size for f in b.files})
    pairs.append(("manifest", a.manifest.status, b.manifest.status))
    return [
        FieldDifference(field=name, a=left, b=right)
        for name, left, right in pairs
        if not _same(left, right)
    ]


def _keyed(prefix: str, a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    keys = list(a) + [key for key in b if key not in a]
    return [(f"{prefix}.{key}", a.get(key), b.get(key)) for key in keys]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(type(a) is type(b) and a == b) or (a is None and b is None)
