"""What a registry's classifier predicts and reads: its label set and feature schemas.

A registry may declare them in ``registry.toml`` at its top level (next to
``active.json``); without one it uses taskclf's own: ``LABEL_SET_V1`` and
the v3/v2/v1 schema registry, so existing registries behave as before.
The labels can be overridden per process by ``$TASKCLF_LABELS`` and per
command by ``--labels`` (most specific wins: option, variable, file,
defaults). The format::

    labels = ["setosa", "versicolor", "virginica"]   # in confusion-matrix order

    [[schemas]]                  # newest first: selection tries them in this order
    version = "iris-v2"
    columns = [["sepal_length", "float"], ["petal_length", "float"]]

    [[schemas]]
    version = "iris-v1"
    hash = "0a1b2c3d4e5f"        # declared by hash instead of columns

    [[schemas]]
    version = "v1"               # a built-in version needs neither

A config that cannot be read or is malformed raises
:class:`~taskclf.model_registry.errors.RegistryConfigError` naming the
file and the key: it is never silently replaced by the defaults, since a
registry judged against the wrong labels excludes every bundle.
Unknown keys are refused for the same reason (a typo such as ``label =``
would otherwise fall back to the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from taskclf.core.schema import (
    COLUMN_TYPE_NAMES,
    FEATURE_SCHEMA_VERSION_ORDER,
    columns_hash,
    known_schema_hash,
)
from taskclf.core.types import CoreLabel
from taskclf.model_registry._fs import read_capped
from taskclf.model_registry.errors import RegistryConfigError, StorageError

CONFIG_FILE = "registry.toml"
LABELS_ENV = "TASKCLF_LABELS"
LABELS_OPTION = "--labels"
CONFIG_FORMAT = 1
_CONFIG_CAP = 1024 * 1024
"""A configuration is a few lines; a larger file is a mistake, reported without reading it."""

_TOP_KEYS = ("format", "labels", "schemas")
_SCHEMA_KEYS = ("version", "hash", "columns")
_DEFAULT_SOURCE = "taskclf defaults"
_FILE_ADVICE = "fix the file (its format is in docs/operators-guide.md) or remove it"

_Fail = Callable[[str, str], RegistryConfigError]
"""Builds the error for a key of the file being parsed."""


class SchemaDeclaration(BaseModel):
    """One feature schema a registry accepts."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    version: str
    """The name bundles declare as ``schema_version``."""
    hash: str
    """The ``schema_hash`` bundles of this version must carry."""
    columns: tuple[tuple[str, str], ...] | None = None
    """The ordered ``(name, type name)`` columns, when the schema was declared by them."""


def _default_schemas() -> tuple[SchemaDeclaration, ...]:
    # Constructed, not validated (the built-in table is known good): importing this
    # module builds no pydantic schema, so following a pointer never pays for one.
    return tuple(
        SchemaDeclaration.model_construct(version=version, hash=_builtin_hash(version))
        for version in FEATURE_SCHEMA_VERSION_ORDER
    )


def _builtin_hash(version: str) -> str:
    found = known_schema_hash(version)
    assert found is not None, version
    return found


def labels_problem(labels: Sequence[object]) -> str | None:
    """Why ``labels`` cannot be a label set (empty, a non-string, blank, duplicated), or None."""
    if not labels:
        return "the label set is empty"
    seen: set[object] = set()
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            return f"label {index + 1} is not a string ({label!r})"
        if not label.strip() or label != label.strip():
            return f"label {index + 1} ({label!r}) is blank or has surrounding spaces"
        if label in seen:
            return f"label {label!r} is listed twice"
        seen.add(label)
    return None


def _duplicate_problem(
    earlier: Sequence[SchemaDeclaration], schema: SchemaDeclaration
) -> str | None:
    for other in earlier:
        if other.version == schema.version:
            return f"version {schema.version!r} is declared twice"
        if other.hash == schema.hash:
            return (
                f"{schema.version!r} has the same hash as {other.version!r} ({schema.hash}); "
                "two versions cannot share a hash"
            )
    return None


class RegistryConfig(BaseModel):
    """A registry's label set and feature-schema registry.

    ``RegistryConfig()`` is taskclf's own: the eight ``CoreLabel`` values
    and the v3, v2, v1 schemas. Construct one directly to judge a registry
    against other labels or schemas without a file.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    labels: tuple[str, ...] = tuple(label.value for label in CoreLabel)
    """The labels, in order (the order a confusion matrix uses)."""
    schemas: tuple[SchemaDeclaration, ...] = _default_schemas()
    """The accepted schemas, newest first (the order of selection's passes)."""
    source: str = _DEFAULT_SOURCE
    """Where the schemas and (unless overridden) labels came from."""
    labels_source: str = _DEFAULT_SOURCE
    """Where the labels came from: the file, ``TASKCLF_LABELS``, ``--labels`` or the defaults."""

    @model_validator(mode="after")
    def _check(self) -> RegistryConfig:
        problem = labels_problem(self.labels)
        if problem is not None:
            raise ValueError(f"labels: {problem}")
        if not self.schemas:
            raise ValueError("schemas: at least one schema is needed")
        for index, schema in enumerate(self.schemas):
            duplicate = _duplicate_problem(self.schemas[:index], schema)
            if duplicate is not None:
                raise ValueError(f"schemas[{index}]: {duplicate}")
        return self

    @property
    def label_set(self) -> frozenset[str]:
        """The labels as a set."""
        return frozenset(self.labels)

    @property
    def schema_hashes(self) -> dict[str, str]:
        """``{version: hash}`` of every accepted schema."""
        return {schema.version: schema.hash for schema in self.schemas}

    @property
    def schema_order(self) -> tuple[str, ...]:
        """The accepted versions, newest first."""
        return tuple(schema.version for schema in self.schemas)

    def schema_hash(self, version: str) -> str | None:
        """The hash of ``version``, or ``None`` when this registry does not know it."""
        return next((s.hash for s in self.schemas if s.version == version), None)

    def version_of_hash(self, schema_hash: str) -> str | None:
        """The version whose hash is ``schema_hash``, or ``None``."""
        return next((s.version for s in self.schemas if s.hash == schema_hash), None)

    def with_labels(self, labels: Sequence[str], source: str) -> RegistryConfig:
        """A copy whose labels are ``labels`` (from ``source``), schemas unchanged."""
        return RegistryConfig(
            labels=tuple(labels),
            schemas=self.schemas,
            source=self.source,
            labels_source=source,
        )


DEFAULT_REGISTRY_CONFIG = RegistryConfig.model_construct()  # == RegistryConfig(), unvalidated
"""taskclf's own labels and schemas: what a registry without ``registry.toml`` uses."""


def parse_labels(text: str, source: str) -> tuple[str, ...]:
    """Comma-separated labels (``$TASKCLF_LABELS``, ``--labels``), spaces around each trimmed.

    Args:
        text: ``"a,b,c"``.
        source: Named in the error (the variable or option).

    Raises:
        RegistryConfigError: An empty item, a duplicate, or no label at all.
    """
    labels = tuple(item.strip() for item in text.split(","))
    problem = labels_problem(labels)
    if problem is not None:
        reason = f"{problem} (expected comma-separated labels, e.g. a,b,c)"
        raise RegistryConfigError(source, None, reason, f"fix {source}")
    return labels


def load_registry_config(
    models_dir: str | os.PathLike[str], *, labels: str | Sequence[str] | None = None
) -> RegistryConfig:
    """The labels and schemas ``models_dir`` is judged against.

    ``models_dir/registry.toml`` if present (else taskclf's defaults), then
    the labels of ``$TASKCLF_LABELS`` (when set and not blank), then
    ``labels``.

    Args:
        models_dir: The registry directory (it need not exist).
        labels: Labels overriding the others (``--labels``): a sequence, or
            a comma-separated string.

    Returns:
        The configuration.

    Raises:
        RegistryConfigError: (a ``ValueError``) ``registry.toml`` is
            unreadable or malformed, or an override is not a usable label set.
    """
    from taskclf.model_registry.storage import open_storage

    storage = open_storage(models_dir)
    # A registry that does not exist (or a path no directory can have) has no file.
    config = (
        read_config_file(
            os.path.join(storage.url, CONFIG_FILE),
            read=lambda: storage.read(CONFIG_FILE, _CONFIG_CAP)[0],
        )
        if storage.registry_problem() is None
        else DEFAULT_REGISTRY_CONFIG
    )
    from_env = os.environ.get(LABELS_ENV, "")
    if from_env.strip():
        config = config.with_labels(parse_labels(from_env, LABELS_ENV), LABELS_ENV)
    if labels is not None:
        if isinstance(labels, str):
            parsed = parse_labels(labels, LABELS_OPTION)
        else:
            parsed = tuple(labels)
            problem = labels_problem(parsed)
            if problem is not None:
                raise RegistryConfigError("labels argument", None, problem, "pass other labels")
        config = config.with_labels(parsed, LABELS_OPTION)
    return config


def read_config_file(
    path: str | os.PathLike[str], *, read: Callable[[], bytes] | None = None
) -> RegistryConfig:
    """Parse one ``registry.toml``; the defaults when it does not exist.

    Args:
        path: Where the file is (how messages name it).
        read: How to read it (default: from ``path``, capped); a registry's
            storage passes its own read, so a bucket's ``registry.toml`` is read too.

    Raises:
        RegistryConfigError: The file exists but is unreadable or malformed.
    """
    source = os.fspath(path)
    try:
        raw = read() if read is not None else read_capped(path, _CONFIG_CAP)
    except (FileNotFoundError, NotADirectoryError):
        return DEFAULT_REGISTRY_CONFIG
    except StorageError:
        # The store itself failed (no bucket, refused credentials, endpoint down): its
        # sentence says what to do; the file is not the problem.
        raise
    except OSError as exc:
        raise RegistryConfigError(source, None, f"unreadable ({exc})", _FILE_ADVICE) from None
    import tomllib  # only a registry with a registry.toml needs it

    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RegistryConfigError(source, None, "not UTF-8 text", _FILE_ADVICE) from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryConfigError(source, None, f"not valid TOML ({exc})", _FILE_ADVICE) from None
    return _parse_document(document, source)


def _parse_document(document: Mapping[str, Any], source: str) -> RegistryConfig:
    def fail(key: str, reason: str) -> RegistryConfigError:
        return RegistryConfigError(source, key, reason, _FILE_ADVICE)

    for key in document:
        if key not in _TOP_KEYS:
            raise fail(key, f"unknown key (allowed: {', '.join(_TOP_KEYS)})")
    version = document.get("format", CONFIG_FORMAT)
    if isinstance(version, bool) or version != CONFIG_FORMAT:
        raise fail("format", f"unsupported format {version!r} (this taskclf reads format 1)")
    labels = DEFAULT_REGISTRY_CONFIG.labels
    labels_source = _DEFAULT_SOURCE
    if "labels" in document:
        raw_labels = document["labels"]
        if not isinstance(raw_labels, list):
            example = '["a", "b"]'
            raise fail("labels", f"must be a list of strings, e.g. {example} (got {raw_labels!r})")
        problem = labels_problem(raw_labels)
        if problem is not None:
            raise fail("labels", problem)
        labels = tuple(raw_labels)
        labels_source = source
    schemas = DEFAULT_REGISTRY_CONFIG.schemas
    if "schemas" in document:
        schemas = _parse_schemas(document["schemas"], fail)
    return RegistryConfig(
        labels=labels, schemas=schemas, source=source, labels_source=labels_source
    )


def _parse_schemas(raw: object, fail: _Fail) -> tuple[SchemaDeclaration, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise fail("schemas", "must be an array of tables ([[schemas]] blocks), newest first")
    if not raw:
        raise fail("schemas", "declares no schema (remove the key to use v3, v2, v1)")
    schemas: list[SchemaDeclaration] = []
    for index, table in enumerate(raw):
        schema = _parse_schema(table, f"schemas[{index}]", fail)
        duplicate = _duplicate_problem(schemas, schema)
        if duplicate is not None:
            raise fail(f"schemas[{index}]", duplicate)
        schemas.append(schema)
    return tuple(schemas)


def _parse_schema(table: Mapping[str, Any], where: str, fail: _Fail) -> SchemaDeclaration:
    for key in table:
        if key not in _SCHEMA_KEYS:
            raise fail(f"{where}.{key}", f"unknown key (allowed: {', '.join(_SCHEMA_KEYS)})")
    version = table.get("version")
    if not isinstance(version, str) or not version.strip() or version != version.strip():
        raise fail(f"{where}.version", f"must be a non-blank name without spaces (got {version!r})")
    columns = None
    if "columns" in table:
        columns = _parse_columns(table["columns"], f"{where}.columns", fail)
    declared = table.get("hash")
    if "hash" in table and (
        not isinstance(declared, str) or not declared or declared.strip() != declared
    ):
        raise fail(f"{where}.hash", f"must be a non-empty string without spaces (got {declared!r})")
    computed = columns_hash(columns) if columns is not None else None
    if declared is not None and computed is not None and declared != computed:
        raise fail(
            f"{where}.hash",
            f"is {declared} but the declared columns hash to {computed}; keep one of the two",
        )
    builtin = known_schema_hash(version)
    schema_hash = declared if declared is not None else computed
    if builtin is not None:
        if schema_hash is not None and schema_hash != builtin:
            raise fail(
                where,
                f"{version!r} is a built-in schema whose hash is {builtin}, not {schema_hash}; "
                "declare it by version alone, or give your schema another version name",
            )
        schema_hash = builtin
    if schema_hash is None:
        raise fail(where, f"schema {version!r} needs a hash or its columns")
    return SchemaDeclaration(version=version, hash=schema_hash, columns=columns)


def _parse_columns(raw: object, where: str, fail: _Fail) -> tuple[tuple[str, str], ...]:
    example = '[["age", "int"], ["score", "float"]]'
    if not isinstance(raw, list) or not raw:
        raise fail(where, f"must be a non-empty list of [name, type] pairs, e.g. {example}")
    columns: list[tuple[str, str]] = []
    names: set[str] = set()
    for index, pair in enumerate(raw):
        key = f"{where}[{index}]"
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise fail(key, f"must be a [name, type] pair of strings (got {pair!r})")
        name, type_name = pair
        if not name:
            raise fail(key, "the column name is empty")
        if name in names:
            raise fail(key, f"column {name!r} is listed twice")
        if type_name not in COLUMN_TYPE_NAMES:
            raise fail(
                key,
                f"unknown type {type_name!r} for column {name!r} "
                f"(allowed: {', '.join(COLUMN_TYPE_NAMES)})",
            )
        names.add(name)
        columns.append((name, type_name))
    return tuple(columns)
