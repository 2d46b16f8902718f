"""taskclf's model registry: scan, validate, rank and activate model bundles.

This module re-exports the public surface; each concern lives in its own
private-by-convention module behind it.
"""

from __future__ import annotations

from taskclf.core.metrics import class_precisions
from taskclf.core.model_io import ModelMetadata
from taskclf.model_registry.activation import (
    Activation,
    RollbackPlan,
    activate,
    activate_bundle,
    check_activatable,
    execute_rollback,
    plan_rollback,
    set_alias_pin,
)
from taskclf.model_registry.alias_admin import AliasInfo, delete_alias, list_aliases
from taskclf.model_registry.aliases import ALIAS_PATTERN, DEFAULT_ALIAS, alias_paths
from taskclf.model_registry.authoring import current_git_commit, save_bundle
from taskclf.model_registry.config import (
    DEFAULT_REGISTRY_CONFIG,
    RegistryConfig,
    SchemaDeclaration,
    load_registry_config,
)
from taskclf.model_registry.errors import (
    ActivationError,
    AliasError,
    AliasNameError,
    AuthoringError,
    BundleError,
    BundleIntegrityError,
    BundleNotFoundError,
    BundleRejectedError,
    MissingExtraError,
    ModelLoadError,
    PromotionError,
    PruneError,
    RegistryConfigError,
    RegistryError,
    RegistryFileError,
    RegistryLockTimeout,
    ReportExtraMissingError,
    RollbackError,
    SealError,
)
from taskclf.model_registry.hysteresis import should_switch_active
from taskclf.model_registry.index import index_staleness, read_index_cache, write_index_cache
from taskclf.model_registry.inspection import (
    BundleDescription,
    BundleDiff,
    describe_bundle,
    diff_bundles,
)
from taskclf.model_registry.listing import (
    SORT_KEYS,
    BundleRow,
    build_rows,
    list_rows,
)
from taskclf.model_registry.manifest import (
    Manifest,
    ManifestCheck,
    ManifestEntry,
    ManifestProblem,
    build_manifest,
    check_manifest,
    read_manifest,
    require_sealed_match,
    seal_bundle,
    seal_registry_bundle,
    write_manifest,
)
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    BundleMetrics,
    ExclusionRecord,
    IndexCache,
    IndexCacheBundleSummary,
    ModelBundle,
    PromotionResult,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.pointer import (
    append_active_history,
    default_actor,
    locate_pointed_bundle,
    read_active,
    read_active_history,
    write_active_atomic,
)
from taskclf.model_registry.promotion import DEFAULT_MAX_BUNDLE_BYTES, promote_bundle
from taskclf.model_registry.resolution import find_best_model, resolve_active_model
from taskclf.model_registry.retention import PruneDecision, PrunePlan, execute_prune, plan_prune
from taskclf.model_registry.scan import list_bundles, read_bundle
from taskclf.model_registry.selection import (
    is_compatible,
    passes_constraints,
    rank_bundles,
    score,
)
from taskclf.model_registry.verify import BundleHealth, Finding, VerifyReport, verify_registry

__all__ = [
    "ALIAS_PATTERN",
    "DEFAULT_ALIAS",
    "DEFAULT_MAX_BUNDLE_BYTES",
    "DEFAULT_REGISTRY_CONFIG",
    "SORT_KEYS",
    "Activation",
    "ActivationError",
    "ActiveHistoryEntry",
    "ActivePointer",
    "AliasError",
    "AliasInfo",
    "AliasNameError",
    "AuthoringError",
    "BundleDescription",
    "BundleDiff",
    "BundleError",
    "BundleHealth",
    "BundleIntegrityError",
    "BundleMetrics",
    "BundleNotFoundError",
    "BundleRejectedError",
    "BundleRow",
    "ExclusionRecord",
    "Finding",
    "IndexCache",
    "IndexCacheBundleSummary",
    "Manifest",
    "ManifestCheck",
    "ManifestEntry",
    "ManifestProblem",
    "MissingExtraError",
    "ModelBundle",
    "ModelLoadError",
    "ModelMetadata",
    "PromotionError",
    "PromotionResult",
    "PruneDecision",
    "PruneError",
    "PrunePlan",
    "RegistryConfig",
    "RegistryConfigError",
    "RegistryError",
    "RegistryFileError",
    "RegistryLockTimeout",
    "ReportExtraMissingError",
    "RollbackError",
    "RollbackPlan",
    "SchemaDeclaration",
    "SealError",
    "SelectionPolicy",
    "SelectionReport",
    "VerifyReport",
    "activate",
    "activate_bundle",
    "alias_paths",
    "append_active_history",
    "build_manifest",
    "build_rows",
    "check_activatable",
    "check_manifest",
    "class_precisions",
    "current_git_commit",
    "default_actor",
    "delete_alias",
    "describe_bundle",
    "diff_bundles",
    "execute_prune",
    "execute_rollback",
    "find_best_model",
    "index_staleness",
    "is_compatible",
    "list_aliases",
    "list_bundles",
    "list_rows",
    "load_registry_config",
    "locate_pointed_bundle",
    "passes_constraints",
    "plan_prune",
    "plan_rollback",
    "promote_bundle",
    "rank_bundles",
    "read_active",
    "read_active_history",
    "read_bundle",
    "read_index_cache",
    "read_manifest",
    "require_sealed_match",
    "resolve_active_model",
    "save_bundle",
    "score",
    "seal_bundle",
    "seal_registry_bundle",
    "set_alias_pin",
    "should_switch_active",
    "verify_registry",
    "write_active_atomic",
    "write_index_cache",
    "write_manifest",
]
