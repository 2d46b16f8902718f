"""The registry's data models (REGISTRY.md §2).

All models are frozen; unknown keys in files are ignored so that newer
writers never break older readers.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    model_serializer,
    model_validator,
)

from taskclf.core.model_io import ModelMetadata

_FROZEN = ConfigDict(frozen=True, extra="ignore", protected_namespaces=(), defer_build=True)

# Strict types: a metrics file with "0.8" or true where a number belongs is
# a broken file, not something to coerce silently.
_Cell = Annotated[StrictInt, Field(ge=0)]
_F1 = Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class BundleMetrics(BaseModel):
    """The contents of ``metrics.json``, with its contract enforced."""

    model_config = _FROZEN

    macro_f1: _F1
    weighted_f1: _F1
    confusion_matrix: list[list[_Cell]]
    label_names: list[str]

    @model_validator(mode="after")
    def _check_matrix(self) -> BundleMetrics:
        n = len(self.label_names)
        if len(set(self.label_names)) != n:
            raise ValueError("label_names must be unique")
        matrix = self.confusion_matrix
        # map, not a generator: every scan validates this once per bundle.
        if len(matrix) != n or not all(map(n.__eq__, map(len, matrix))):
            raise ValueError(f"confusion_matrix must be {n}x{n} to match label_names")
        return self


class ModelBundle(BaseModel):
    """One immediate subdirectory of ``models_dir``, valid or not."""

    model_config = _FROZEN

    model_id: str
    path: Path
    valid: bool
    invalid_reason: str | None = None
    metadata: ModelMetadata | None = None
    metrics: BundleMetrics | None = None
    created_at: datetime | None = None


class SelectionPolicy(BaseModel):
    """How candidates are gated and when the pointer may move."""

    model_config = _FROZEN

    version: int = 1
    min_improvement: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


class ExclusionRecord(BaseModel):
    """A bundle left out of the ranking, and why."""

    model_config = _FROZEN

    model_id: str
    path: Path
    reason: str


class SelectionReport(BaseModel):
    """The outcome of one selection pass."""

    model_config = _FROZEN

    best: ModelBundle | None
    ranked: list[ModelBundle]
    excluded: list[ExclusionRecord]
    policy: SelectionPolicy
    required_schema_hash: str


class ActivePointer(BaseModel):
    """The contents of ``active.json``."""

    model_config = _FROZEN

    model_dir: str
    selected_at: str
    policy_version: int
    model_id: str | None = None
    reason: dict[str, object] | None = None
    pinned: bool = False
    """Automatic moves (promotion, self-heal to another bundle) leave a pinned alias alone."""

    @model_serializer(mode="wrap")
    def _omit_unpinned(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # An unpinned pointer is written byte for byte as before pins existed.
        data: dict[str, object] = handler(self)
        if not self.pinned:
            data.pop("pinned", None)
        return data


class ActiveHistoryEntry(BaseModel):
    """One line of ``active_history.jsonl`` (or of an alias's history).

    ``actor`` and ``message`` (who moved the pointer and why) are extra keys
    that older readers ignore; they are left out of the line when ``None``,
    so an entry without them round-trips to the original format.
    """

    model_config = _FROZEN

    at: str
    old: ActivePointer | None
    new: ActivePointer
    actor: str | None = None
    message: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        for key in ("actor", "message"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class IndexCacheBundleSummary(BaseModel):
    """One ranked bundle in ``index.json``."""

    model_config = _FROZEN

    model_id: str
    path: str
    macro_f1: float | None = None
    weighted_f1: float | None = None
    created_at: str | None = None
    eligible: bool = False


class IndexCache(BaseModel):
    """The contents of ``index.json``: an informational ranking snapshot."""

    model_config = _FROZEN

    generated_at: str
    schema_hash: str
    policy_version: int
    ranked: list[IndexCacheBundleSummary]
    excluded: list[ExclusionRecord]
    best_model_id: str | None = None


class PromotionResult(BaseModel):
    """What ``promote_bundle`` did."""

    model_config = _FROZEN

    bundle: ModelBundle
    report: SelectionReport
    active_updated: bool
    previous: ActivePointer | None
    active: ActivePointer | None
    alias: str = "active"
    """The alias the overthrow ran against (``previous`` and ``active`` are its pointer)."""
    activate: bool = True
    """False for ``promote --no-activate``: no pointer was considered."""
    pinned: bool = False
    """The alias was pinned, so the overthrow left it alone."""
