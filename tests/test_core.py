"""REGISTRY.md §1: hashing, labels, the feature-schema registry and ModelMetadata."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from taskclf.core.hashing import stable_hash
from taskclf.core.model_io import ModelMetadata
from taskclf.core.schema import (
    FEATURE_SCHEMA_REGISTRY,
    FEATURE_SCHEMA_VERSION_ORDER,
    LATEST_FEATURE_SCHEMA_VERSION,
    FeatureSchemaV1,
    FeatureSchemaV2,
    FeatureSchemaV3,
    get_feature_schema,
    iter_feature_schema_versions,
)
from taskclf.core.types import LABEL_SET_V1, CoreLabel

SPEC_SCHEMAS = Path("/work/shared/spec/feature_schemas.json")
EXPECTED_HASHES = {"v1": "4077fe0dba70", "v2": "a15f4751a947", "v3": "7f29b4b8795e"}
LABEL_ORDER = [
    "Build",
    "Debug",
    "Review",
    "Write",
    "ReadResearch",
    "Communicate",
    "Meet",
    "BreakIdle",
]


# --- hashing ----------------------------------------------------------------


@pytest.mark.parametrize("payload", ["", "abc", "héllo wörld ✓", "x" * 10_000])
def test_stable_hash_is_first_12_hex_of_sha256_of_utf8(payload: str) -> None:
    expected = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
    assert stable_hash(payload) == expected


def test_stable_hash_known_vectors() -> None:
    assert stable_hash("") == "e3b0c44298fc"
    assert stable_hash("abc") == "ba7816bf8f01"


def test_stable_hash_is_lowercase_hex_of_length_12() -> None:
    value = stable_hash("anything")
    assert len(value) == 12
    assert value == value.lower()
    int(value, 16)


# --- labels -----------------------------------------------------------------


def test_core_label_is_a_str_enum_in_the_stated_order() -> None:
    assert issubclass(CoreLabel, StrEnum)
    assert [member.name for member in CoreLabel] == LABEL_ORDER


def test_core_label_values_equal_names() -> None:
    for member in CoreLabel:
        assert member.value == member.name
        assert member == member.name  # StrEnum compares as its value


def test_label_set_v1_is_a_frozenset_of_the_eight_values() -> None:
    assert isinstance(LABEL_SET_V1, frozenset)
    assert set(LABEL_ORDER) == LABEL_SET_V1
    assert len(LABEL_SET_V1) == 8
    assert all(type(label) is str or isinstance(label, str) for label in LABEL_SET_V1)


# --- feature schemas --------------------------------------------------------

SCHEMAS = {"v1": FeatureSchemaV1, "v2": FeatureSchemaV2, "v3": FeatureSchemaV3}


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_schema_class_attributes(version: str) -> None:
    schema = SCHEMAS[version]
    assert version == schema.VERSION
    assert isinstance(schema.COLUMNS, dict)
    assert schema.COLUMNS
    assert all(
        isinstance(name, str) and isinstance(tp, type) for name, tp in schema.COLUMNS.items()
    )


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_schema_hash_is_exactly_the_published_value(version: str) -> None:
    assert EXPECTED_HASHES[version] == SCHEMAS[version].SCHEMA_HASH


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_schema_hash_follows_the_stated_formula(version: str) -> None:
    schema = SCHEMAS[version]
    payload = json.dumps(
        [[name, tp.__name__] for name, tp in schema.COLUMNS.items()], separators=(",", ":")
    )
    assert stable_hash(payload) == schema.SCHEMA_HASH


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_schema_columns_match_the_spec_data_in_order(version: str) -> None:
    if not SPEC_SCHEMAS.exists():
        pytest.skip("spec data not available")
    spec = json.loads(SPEC_SCHEMAS.read_text("utf-8"))["schemas"][version]
    got = [[name, tp.__name__] for name, tp in SCHEMAS[version].COLUMNS.items()]
    assert got == spec["columns"]
    assert spec["expected_hash"] == SCHEMAS[version].SCHEMA_HASH


def test_schema_hashes_are_distinct() -> None:
    assert len({s.SCHEMA_HASH for s in SCHEMAS.values()}) == 3


def test_registry_latest_and_order() -> None:
    assert FEATURE_SCHEMA_REGISTRY == SCHEMAS
    assert LATEST_FEATURE_SCHEMA_VERSION == "v3"
    assert FEATURE_SCHEMA_VERSION_ORDER == ("v3", "v2", "v1")


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_get_feature_schema_returns_the_class(version: str) -> None:
    assert get_feature_schema(version) is SCHEMAS[version]


@pytest.mark.parametrize("version", ["v4", "", "V1", "v1 ", "1"])
def test_get_feature_schema_unknown_raises_value_error(version: str) -> None:
    with pytest.raises(ValueError):
        get_feature_schema(version)


def test_iter_feature_schema_versions_default_is_newest_first() -> None:
    assert tuple(iter_feature_schema_versions()) == ("v3", "v2", "v1")
    assert tuple(iter_feature_schema_versions(None)) == ("v3", "v2", "v1")


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [("v3", ("v3", "v2", "v1")), ("v2", ("v2", "v3", "v1")), ("v1", ("v1", "v3", "v2"))],
)
def test_iter_feature_schema_versions_preferred_first(
    preferred: str, expected: tuple[str, ...]
) -> None:
    assert tuple(iter_feature_schema_versions(preferred)) == expected


@pytest.mark.parametrize("preferred", ["v0", "latest", ""])
def test_iter_feature_schema_versions_unknown_raises_value_error(preferred: str) -> None:
    with pytest.raises(ValueError):
        iter_feature_schema_versions(preferred)


# --- ModelMetadata ----------------------------------------------------------


def _metadata_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "schema_version": "v1",
        "schema_hash": EXPECTED_HASHES["v1"],
        "label_set": LABEL_ORDER,
        "train_date_from": "2025-10-01",
        "train_date_to": "2025-12-31",
        "params": {"seed": 1},
        "git_commit": "abc",
        "dataset_hash": "def",
    }
    fields.update(overrides)
    return fields


def test_model_metadata_defaults() -> None:
    meta = ModelMetadata(**_metadata_fields())
    assert meta.reject_threshold is None
    assert meta.data_provenance == "real"
    assert meta.unknown_category_freq_threshold is None
    assert meta.unknown_category_mask_rate is None


def test_model_metadata_created_at_default_is_now_utc_with_offset() -> None:
    before = datetime.now(UTC)
    meta = ModelMetadata(**_metadata_fields())
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(meta.created_at)
    assert parsed.tzinfo is not None, "created_at must include its offset"
    assert parsed.utcoffset() == timedelta(0)
    assert meta.created_at.endswith("+00:00")
    assert before <= parsed <= after


def test_model_metadata_created_at_default_when_absent_from_json() -> None:
    meta = ModelMetadata.model_validate_json(json.dumps(_metadata_fields()))
    assert datetime.fromisoformat(meta.created_at).tzinfo is not None


@pytest.mark.parametrize(
    "missing",
    [
        "schema_version",
        "schema_hash",
        "label_set",
        "train_date_from",
        "train_date_to",
        "params",
        "git_commit",
        "dataset_hash",
    ],
)
def test_model_metadata_required_fields(missing: str) -> None:
    fields = _metadata_fields()
    del fields[missing]
    with pytest.raises(ValidationError):
        ModelMetadata(**fields)


@pytest.mark.parametrize("provenance", ["real", "synthetic", "mixed"])
def test_model_metadata_accepts_each_provenance(provenance: str) -> None:
    assert ModelMetadata(**_metadata_fields(data_provenance=provenance)).data_provenance == (
        provenance
    )


def test_model_metadata_rejects_unknown_provenance() -> None:
    with pytest.raises(ValidationError):
        ModelMetadata(**_metadata_fields(data_provenance="imagined"))


def test_model_metadata_optional_fields_round_trip() -> None:
    meta = ModelMetadata(
        **_metadata_fields(
            reject_threshold=0.3,
            unknown_category_freq_threshold=5,
            unknown_category_mask_rate=0.1,
            created_at="2026-01-01T00:00:00+02:00",
        )
    )
    again = ModelMetadata.model_validate_json(meta.model_dump_json())
    assert again == meta
    assert again.created_at == "2026-01-01T00:00:00+02:00"


def test_model_metadata_ignores_extra_keys_and_is_frozen() -> None:
    meta = ModelMetadata.model_validate_json(json.dumps(_metadata_fields(future_field=[1, 2])))
    assert not hasattr(meta, "future_field")
    with pytest.raises(ValidationError):
        meta.schema_hash = "changed"  # type: ignore[misc]


# --- public surface (§1: ``taskclf.model_registry`` has everything in §2-9) ---

SECTION_2_TO_9 = [
    # §2
    "ModelMetadata",
    "BundleMetrics",
    "ModelBundle",
    "SelectionPolicy",
    "ExclusionRecord",
    "SelectionReport",
    "ActivePointer",
    "ActiveHistoryEntry",
    "IndexCacheBundleSummary",
    "IndexCache",
    # §3-9
    "list_bundles",
    "is_compatible",
    "passes_constraints",
    "score",
    "find_best_model",
    "read_active",
    "write_active_atomic",
    "append_active_history",
    "read_active_history",
    "resolve_active_model",
    "write_index_cache",
    "read_index_cache",
    "should_switch_active",
]


@pytest.mark.parametrize("name", SECTION_2_TO_9)
def test_model_registry_exports(name: str) -> None:
    import taskclf.model_registry as registry

    assert name in registry.__all__
    assert getattr(registry, name) is not None


def test_model_registry_metadata_is_the_core_class() -> None:
    import taskclf.model_registry as registry

    assert registry.ModelMetadata is ModelMetadata
