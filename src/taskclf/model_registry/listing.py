"""The rows of ``taskclf train list``: one per bundle, with precision and eligibility.

Registry logic, not presentation: the CLI renders these rows as a table
or JSON. Row building is pure (bundles in, rows out); :func:`list_rows`
is the one function that touches the disk, scanning the directory once.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict

from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry.config import RegistryConfig, load_registry_config
from taskclf.model_registry.lazy_bundle import NO_INSTANT_US, directory_name, row_facts
from taskclf.model_registry.models import ModelBundle, SelectionPolicy
from taskclf.model_registry.pointer import locate_active_bundle
from taskclf.model_registry.scan import FastConstructor, list_bundles
from taskclf.model_registry.selection import bundle_facts, exclusion_reason
from taskclf.model_registry.storage import open_storage

SortKey = Literal["macro_f1", "weighted_f1", "created_at"]
SORT_KEYS: tuple[str, ...] = get_args(SortKey)
"""The values ``train list --sort`` accepts, the default first."""

_DEFAULT_POLICY = SelectionPolicy()


class BundleRow(BaseModel):
    """One bundle as ``train list`` shows it: the ten keys of CLI.md, plus ``aliases``.

    ``aliases`` (issue 14) lists every alias whose pointer locates the bundle,
    ``active`` first when it does; ``active`` keeps its CLI.md meaning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_id: str
    created_at: str | None
    schema_hash: str | None
    macro_f1: float | None
    weighted_f1: float | None
    bi_prec: float | None
    min_prec: float | None
    eligible: bool
    active: bool
    notes: str | None
    aliases: list[str] = []


def check_sort_key(sort: str) -> None:
    """Raise ``ValueError`` naming the allowed values unless ``sort`` is one of them."""
    if sort not in SORT_KEYS:
        raise ValueError(f"Unknown sort key {sort!r}; allowed values: {', '.join(SORT_KEYS)}")


def bundle_row(
    bundle: ModelBundle,
    *,
    active: bool,
    schema_hash: str | None = None,
    labels: Collection[str] = LABEL_SET_V1,
    schemas: Mapping[str, str] | None = None,
    aliases: Sequence[str] = (),
) -> BundleRow:
    """Build the ``train list`` row of one bundle (pure).

    ``labels`` and ``schemas`` (``{version: hash}``, default v1/v2/v3) are
    what eligibility is judged against; ``notes`` is the exact exclusion
    reason CLI.md fixes. ``aliases`` are the aliases locating the bundle.
    """
    # Facts, not the models: a bundle from the scan cache carries them (nothing parsed).
    row = row_facts(bundle)
    notes = exclusion_reason(bundle, _DEFAULT_POLICY, schema_hash, labels, schemas)
    # Constructed, not validated: the values are already typed, and 10k rows must stay cheap.
    return _new_row(
        {
            "model_id": bundle.model_id,
            "created_at": row.created_at,
            "schema_hash": bundle_facts(bundle).schema_hash,
            "macro_f1": row.macro_f1,
            "weighted_f1": row.weighted_f1,
            "bi_prec": row.bi_prec,
            "min_prec": row.min_prec,
            "eligible": notes is None,
            "active": active,
            "notes": notes,
            "aliases": list(aliases),
        }
    )


_new_row = FastConstructor(
    BundleRow,
    {
        "model_id": "m",
        "created_at": "2026-01-01T00:00:00+00:00",
        "schema_hash": "h",
        "macro_f1": 0.5,
        "weighted_f1": 0.5,
        "bi_prec": None,
        "min_prec": 0.5,
        "eligible": False,
        "active": True,
        "notes": "n",
        "aliases": ["active"],
    },
)


def sort_rows(
    rows: Sequence[BundleRow],
    sort: str,
    created: Mapping[str, datetime] | Mapping[str, int] | None = None,
) -> list[BundleRow]:
    """Sort rows descending by ``sort``, rows whose key is null last (pure).

    Args:
        rows: The rows.
        sort: One of :data:`SORT_KEYS`.
        created: Parsed ``created_at`` per model id (datetimes, or integer
            microseconds since the epoch), so that ``created_at`` compares as
            instants (mixed UTC offsets sort correctly); a row missing from it
            sorts as null. Without it the raw strings compare.

    Returns:
        A new list; rows with equal keys keep their input order.

    Raises:
        ValueError: ``sort`` is not one of :data:`SORT_KEYS`.
    """
    check_sort_key(sort)

    def key(row: BundleRow) -> Any:
        if sort == "created_at" and created is not None:
            return created.get(row.model_id)
        return getattr(row, sort)

    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    # Python's sort is stable under reverse=True too: ties keep the input order.
    present.sort(key=key, reverse=True)
    return present + missing


def build_rows(
    bundles: Sequence[ModelBundle],
    *,
    active_path: Path | None,
    sort: str = "macro_f1",
    schema_hash: str | None = None,
    eligible_only: bool = False,
    config: RegistryConfig | None = None,
    aliased: Mapping[Path, Sequence[str]] | None = None,
) -> list[BundleRow]:
    """The sorted ``train list`` rows for already-scanned ``bundles`` (pure).

    Args:
        bundles: The scanned bundles.
        active_path: The bundle directory the active pointer locates, if any.
        sort: One of :data:`SORT_KEYS`.
        schema_hash: Check compatibility against this hash instead of each
            bundle's declared schema.
        eligible_only: Keep only eligible rows.
        config: The labels and schemas eligibility is judged against
            (default: taskclf's own).
        aliased: For each bundle directory some alias locates, those aliases.

    Raises:
        ValueError: Unknown ``sort``.
    """
    check_sort_key(sort)
    labels = config.labels if config is not None else LABEL_SET_V1
    schemas = config.schema_hashes if config is not None else None
    located = dict(aliased or {})
    if active_path is not None:
        located.setdefault(active_path, ())
    # Only a bundle whose directory has a located one's name can be it: comparing the
    # names first spares building the Path of every other bundle (most wait for it).
    located_names = {path.name for path in located}
    rows = []
    for b in bundles:
        is_active, aliases = False, cast("Sequence[str]", ())
        if located_names and directory_name(b) in located_names:
            path = b.path
            is_active = active_path is not None and path == active_path
            aliases = (aliased or {}).get(path, ())
        rows.append(
            bundle_row(
                b,
                active=is_active,
                schema_hash=schema_hash,
                labels=labels,
                schemas=schemas,
                aliases=aliases,
            )
        )
    if eligible_only:
        rows = [row for row in rows if row.eligible]
    # Instants as bundle_facts keeps them (integer microseconds: the same order as the
    # datetimes); a created_at that is not ISO-8601 has none, so its row sorts with the nulls.
    created = {
        b.model_id: instant
        for b in bundles
        if (instant := bundle_facts(b).instant_us) != NO_INSTANT_US
    }
    return sort_rows(rows, sort, created)


def list_rows(
    models_dir: str | os.PathLike[str],
    *,
    sort: str = "macro_f1",
    schema_hash: str | None = None,
    eligible_only: bool = False,
    config: RegistryConfig | None = None,
) -> list[BundleRow]:
    """Scan ``models_dir`` once and return its ``train list`` rows.

    Args:
        models_dir: The registry directory.
        sort: ``macro_f1`` (default), ``weighted_f1`` or ``created_at``;
            descending, nulls last.
        schema_hash: Check compatibility against this hash (``--schema-hash``).
        eligible_only: Keep only eligible rows (``--eligible``).
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The rows; ``[]`` for an empty or missing registry.

    Raises:
        ValueError: Unknown ``sort`` (checked before scanning).
        RegistryConfigError: The registry's configuration is malformed.
    """
    check_sort_key(sort)
    storage = open_storage(models_dir)
    root = storage.root_path
    config = config if config is not None else load_registry_config(root)
    located: dict[Path, list[str]] = {}
    for alias in storage.alias_names():
        path = locate_active_bundle(root, alias=alias)
        if path is not None:
            located.setdefault(path, []).append(alias)
    return build_rows(
        list_bundles(root),
        active_path=locate_active_bundle(root),
        aliased=located,
        sort=sort,
        schema_hash=schema_hash,
        eligible_only=eligible_only,
        config=config,
    )
