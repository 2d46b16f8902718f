"""Feature-schema registry.

The column lists are data (``feature_schemas.json``, shipped with the
package); each schema's hash is derived from its ordered columns, so a
bundle trained on one layout can be told apart from another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from taskclf.core.hashing import stable_hash

_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "datetime": datetime,
}


COLUMN_TYPE_NAMES: tuple[str, ...] = tuple(_TYPES)
"""The column type names a schema may use (Python type names: the hash is built from them)."""


def columns_hash(columns: Iterable[tuple[str, str]]) -> str:
    """The schema hash of ordered ``(column name, type name)`` pairs (REGISTRY.md §1).

    ``stable_hash`` of the compact JSON list of ``[name, type name]`` pairs,
    so a schema declared as data (``registry.toml``) hashes exactly like a
    schema class whose ``COLUMNS`` map the same names to the same types.

    Args:
        columns: The columns in order, each a name and a type name such as ``"float"``.

    Returns:
        The 12-character hash.
    """
    payload = json.dumps([[name, type_name] for name, type_name in columns], separators=(",", ":"))
    return stable_hash(payload)


def _schema_hash(columns: dict[str, type]) -> str:
    return columns_hash((name, tp.__name__) for name, tp in columns.items())


def _load_columns() -> dict[str, dict[str, type]]:
    # Beside this module (wheels and editable installs alike), read without
    # importlib.resources: it imports zipfile and tempfile, on every start.
    raw = json.loads(Path(__file__).with_name("feature_schemas.json").read_text("utf-8"))
    return {
        version: {name: _TYPES[type_name] for name, type_name in spec["columns"]}
        for version, spec in raw["schemas"].items()
    }


_COLUMNS = _load_columns()


class FeatureSchema:
    """Base of the versioned schemas; subclasses set the class attributes."""

    VERSION: ClassVar[str]
    COLUMNS: ClassVar[dict[str, type]]
    SCHEMA_HASH: ClassVar[str]


class FeatureSchemaV1(FeatureSchema):
    """The first feature layout."""

    VERSION = "v1"
    COLUMNS = _COLUMNS["v1"]
    SCHEMA_HASH = _schema_hash(COLUMNS)


class FeatureSchemaV2(FeatureSchema):
    """v1 without ``user_id``."""

    VERSION = "v2"
    COLUMNS = _COLUMNS["v2"]
    SCHEMA_HASH = _schema_hash(COLUMNS)


class FeatureSchemaV3(FeatureSchema):
    """v1 plus window-title sketch features."""

    VERSION = "v3"
    COLUMNS = _COLUMNS["v3"]
    SCHEMA_HASH = _schema_hash(COLUMNS)


FEATURE_SCHEMA_REGISTRY: dict[str, type[FeatureSchema]] = {
    "v1": FeatureSchemaV1,
    "v2": FeatureSchemaV2,
    "v3": FeatureSchemaV3,
}
LATEST_FEATURE_SCHEMA_VERSION = "v3"
FEATURE_SCHEMA_VERSION_ORDER: tuple[str, ...] = ("v3", "v2", "v1")


def get_feature_schema(version: str) -> type[FeatureSchema]:
    """Return the schema class for ``version``.

    Raises:
        ValueError: ``version`` is not a known schema version.
    """
    try:
        return FEATURE_SCHEMA_REGISTRY[version]
    except (KeyError, TypeError):
        known = ", ".join(FEATURE_SCHEMA_VERSION_ORDER)
        raise ValueError(f"Unknown feature schema version {version!r} (known: {known})") from None


def iter_feature_schema_versions(preferred: str | None = None) -> tuple[str, ...]:
    """Known versions newest-first, or ``preferred`` first and then the rest newest-first.

    Raises:
        ValueError: ``preferred`` is not a known schema version.
    """
    if preferred is None:
        return FEATURE_SCHEMA_VERSION_ORDER
    get_feature_schema(preferred)
    return (preferred, *(v for v in FEATURE_SCHEMA_VERSION_ORDER if v != preferred))


def known_schema_hash(version: str) -> str | None:
    """The hash of a known schema version, or ``None`` for an unknown one."""
    schema = FEATURE_SCHEMA_REGISTRY.get(version)
    return schema.SCHEMA_HASH if schema is not None else None
