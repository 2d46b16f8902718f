"""``metadata.json``: what a bundle says about how it was trained."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


class ModelMetadata(BaseModel):
    """The contents of a bundle's ``metadata.json``. Unknown keys are ignored."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", protected_namespaces=(), defer_build=True
    )

    schema_version: str
    schema_hash: str
    label_set: list[str]
    train_date_from: str
    train_date_to: str
    params: dict[str, Any]
    git_commit: str
    dataset_hash: str
    reject_threshold: float | None = None
    data_provenance: Literal["real", "synthetic", "mixed"] = "real"
    created_at: str = Field(default_factory=_utc_now_iso)
    unknown_category_freq_threshold: int | None = None
    unknown_category_mask_rate: float | None = None
