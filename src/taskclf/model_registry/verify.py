"""A read-only health check of a whole registry (``taskclf model verify``).

:func:`verify_registry` changes nothing in the registry, not even a lock file
(its scan may update the user's scan cache, outside the registry): it only
lists directories, ``stat``-s and reads files. It therefore takes
no lock, and a concurrent writer can make one run report a transient
state (a ``.staging-*`` directory of a promotion in progress, say).

Every finding is one line naming the file or bundle and what to do.
Severities: an **error** makes the registry unhealthy, a **warning** is
informational.

Errors:

- ``registry-missing``: ``models_dir`` is not a directory.
- ``bundle-invalid``: a bundle fails validation.
- ``registry-not-bundle``: a subdirectory is itself a registry (it holds
  ``active.json``, the history, the index, the lock, ``registry.toml`` or
  ``.aliases/``): usually ``--models-dir`` one level too high. The finding
  names the directory to check instead and never suggests deleting it.
- ``not-a-bundle``: a subdirectory holds none of ``metadata.json``,
  ``metrics.json`` or ``manifest.json``; prune never deletes it, so the
  advice is to move it out.
- ``no-eligible-bundle``: no bundle could be activated.
- ``pointer-missing``: no ``active.json`` while eligible bundles exist.
- ``pointer-unreadable`` / ``pointer-invalid``: ``active.json`` cannot be
  read, or is not JSON / not a pointer.
- ``pointer-escapes``: its ``model_dir`` leaves the registry.
- ``pointer-target-missing`` / ``-invalid`` / ``-incompatible``: it locates
  no bundle directory, an invalid bundle, or an incompatible one.
- ``history-unreadable``: ``active_history.jsonl`` cannot be read.
- ``history-line-invalid``: a line does not parse (torn write, hand edit).
- ``history-line-oversized``: a line is larger than the read cap; it is
  skipped (never read into memory) and the entries around it are checked.
- ``history-pointer-mismatch``: the last entry's ``new`` is not the pointer.
- ``leftover-temp-file`` / ``leftover-staging-dir`` / ``leftover-trash-dir``:
  what an interrupted atomic write, promotion or prune leaves.
- ``registry-file-symlink``: ``active.json``, the history, ``index.json``,
  the lock file, ``.aliases`` or an alias's pointer or history is a
  symlink (every write to it will be refused).
- ``alias-dir-unusable``: ``.aliases`` is not a directory.
- ``alias-pinned-unusable``: a pinned alias locates a bundle that is
  missing, invalid or incompatible: resolution refuses it and serves the
  best eligible bundle instead, and nothing automatic will move the pin.
- ``config-invalid``: ``registry.toml`` (or ``$TASKCLF_LABELS``) is
  unusable; bundles are then judged against taskclf's default labels and
  schemas, and the finding says so.

- ``bundle-manifest-mismatch``: a sealed bundle does not match its
  ``manifest.json`` (one finding per differing file, naming it).
- ``bundle-metrics-inconsistent``: ``macro_f1`` or ``weighted_f1`` in
  ``metrics.json`` differs from what its confusion matrix gives by more
  than 1e-6 (a hand-edited score ranks a bundle wrongly).
- ``bundle-labels-inconsistent``: ``metrics.label_names`` is not the same
  set as ``metadata.label_set`` (the scores describe other classes).

Warnings:

- ``pointer-id-mismatch``: the pointer's ``model_id`` differs from the
  bundle its ``model_dir`` names; resolution (and every message) follows
  ``model_dir``.
- ``bundle-incompatible``: valid, but not compatible with its declared
  schema and the registry's label set (with the missing and extra labels).
- ``history-missing``: a pointer exists but no history (a hand-made pointer).
- ``history-large``: the history outgrew the read cap; only its newest
  entries were checked.
- ``history-chain-broken``: an entry's ``old`` is not the previous entry's
  ``new`` (the pointer changed outside taskclf in between).
- ``history-uncommitted-entry``: an entry that never took effect (the
  next entry's ``old`` is this entry's ``old``: a crash between the
  history append and the pointer replace).
- ``index-missing`` / ``index-invalid`` / ``index-stale``: ``index.json``
  is absent, unusable, or bundles were added, removed or changed since.
- ``bundle-no-artifact``: a bundle holds nothing besides ``metadata.json``,
  ``metrics.json`` (and ``confusion_matrix.csv`` / ``manifest.json``): no
  model to load.

Information (never makes the registry unhealthy):

- ``bundle-unsealed``: bundles without ``manifest.json`` (one finding
  listing them): valid and usable, but their files cannot be checked.

Manifest checks: by default the bundle the pointer locates is hashed and
every other sealed bundle is checked for presence, type and size of its
files; ``deep=True`` (``verify --deep``) hashes every sealed bundle. The
consistency checks are findings only: they never make a bundle invalid,
so rankings and bundles from older tools are unaffected.

Bundle health uses the same compatibility as ``train list`` without
``--schema-hash``: the bundle's own declared schema version and the
registry's label set (``registry.toml``, else ``LABEL_SET_V1``); eligible =
compatible and passes the policy constraints.

Aliases (issue 14): every alias's pointer and history get exactly the
checks of ``active.json`` and its history, with the same codes; the
messages name the alias. An alias other than ``active`` exists only
through its pointer file, so ``pointer-missing`` applies to ``active`` alone.
Problems with the *current* state are errors: an unparseable history
line misleads ``rollback`` and ``prune``, and a last entry that
disagrees with the pointer means the last write did not complete. Gaps
in the *past* of the append-only history (a broken chain, an entry that
never took effect) cannot be repaired and do not affect what is active,
so they are warnings: otherwise one hand edit of ``active.json`` would
fail ``verify`` in CI forever. A stale or missing index is never read by
selection, hence warnings.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from taskclf.core.metrics import f1_summary
from taskclf.model_registry._fs import LOCK_FILE, MAX_FILE_BYTES, read_tail
from taskclf.model_registry.aliases import (
    ALIAS_DIR,
    DEFAULT_ALIAS,
    AliasPaths,
    alias_dir_problem,
    alias_paths,
)
from taskclf.model_registry.authoring import CONFUSION_MATRIX_FILE
from taskclf.model_registry.config import (
    CONFIG_FILE,
    DEFAULT_REGISTRY_CONFIG,
    RegistryConfig,
    load_registry_config,
)
from taskclf.model_registry.errors import RegistryConfigError, mismatch_advice
from taskclf.model_registry.index import INDEX_FILE, index_staleness
from taskclf.model_registry.manifest import MANIFEST_FILE
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    IndexCache,
    ModelBundle,
    SelectionPolicy,
)
from taskclf.model_registry.pointer import (
    ACTIVE_FILE,
    HISTORY_FILE,
    locate_pointed_bundle,
    parse_history_lines,
    pointer_bundle_name,
)
from taskclf.model_registry.resolution import pointer_label
from taskclf.model_registry.retention import leftover_kind
from taskclf.model_registry.scan import (
    BUNDLE_FILES,
    METADATA_FILE,
    METRICS_FILE,
    is_json_error,
    list_bundles,
)
from taskclf.model_registry.selection import (
    declared_incompatibility,
    explain_incompatibility,
    passes_constraints,
)
from taskclf.model_registry.storage import Storage, open_storage
from taskclf.model_registry.storage.chain import pointer_key

_FIX_POINTER = "run `taskclf model set-active --model-id ID` or `taskclf model rollback`"


def _fix_pointer(alias: str) -> str:
    if alias == DEFAULT_ALIAS:
        return _FIX_POINTER
    return (
        f"run `taskclf model set-active --alias {alias} --model-id ID`, "
        f"`taskclf model rollback --alias {alias}` or `taskclf model alias delete {alias}`"
    )


class Finding(BaseModel):
    """One problem (``error``) or remark (``warning``) about the registry."""

    model_config = ConfigDict(frozen=True)

    severity: Literal["error", "warning", "info"]
    code: str
    message: str
    path: str | None = None
    model_id: str | None = None


class BundleHealth(BaseModel):
    """One bundle's state, as ``verify`` sees it."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    valid: bool
    compatible: bool
    eligible: bool
    reason: str | None
    """Why it is invalid or incompatible (an exclusion-style reason), else ``None``."""
    active: bool = False
    """The active pointer locates this bundle."""
    manifest: Literal["unsealed", "match", "mismatch"] = "unsealed"
    """The bundle against its ``manifest.json`` (hashed only when ``deep`` or aliased)."""
    aliases: list[str] = []
    """Every alias (``active`` included) whose pointer locates this bundle."""


class AliasHealth(BaseModel):
    """One alias's pointer, as ``verify`` sees it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    model_id: str | None
    """The bundle the pointer locates (if it parses, stays inside and exists)."""
    pinned: bool


class VerifyReport(BaseModel):
    """The outcome of :func:`verify_registry`."""

    model_config = ConfigDict(frozen=True)

    models_dir: str
    healthy: bool
    """No finding is an error."""
    active_model_id: str | None
    """The bundle directory the pointer locates, if it parses, stays inside and exists."""
    index_state: Literal["missing", "fresh", "stale", "invalid"]
    bundles: list[BundleHealth]
    findings: list[Finding]
    aliases: list[AliasHealth] = []
    """Every alias pointer file, ``active`` first."""


def verify_registry(
    models_dir: str | os.PathLike[str],
    *,
    bundles: Sequence[ModelBundle] | None = None,
    deep: bool = False,
    config: RegistryConfig | None = None,
    labels: str | Sequence[str] | None = None,
) -> VerifyReport:
    """Check every bundle, the pointer, the history, the index and leftovers; write nothing.

    Args:
        models_dir: The registry directory.
        bundles: ``list_bundles(models_dir)`` already scanned by the caller (the
            report checks and draws the same scan); default: scan here.
        deep: Hash every sealed bundle's files (default: only the active
            bundle's; the others are checked for presence, type and sizes).
        config: The labels and schemas bundles are judged against (default:
            read from ``models_dir``; a malformed one is a finding).
        labels: Labels overriding the registry's (``--labels``), when
            ``config`` is not given.

    Returns:
        The report; ``healthy`` is False when any finding is an error.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    missing = storage.registry_problem()
    if bundles is None and missing is None:
        try:
            bundles = list_bundles(root)
        except OSError as exc:  # an object store that cannot be reached
            missing = str(exc)
    if missing is not None:
        message = f"{missing}; check the registry path"
        finding = _error("registry-missing", message, root)
        return VerifyReport(
            models_dir=storage.url,
            healthy=False,
            active_model_id=None,
            index_state="missing",
            bundles=[],
            findings=[finding],
        )
    findings: list[Finding] = []
    if config is None:
        config, config_findings = _load_config(root, labels)
        findings += config_findings
    bundles = list_bundles(root) if bundles is None else list(bundles)
    schemas = config.schema_hashes
    health = [_bundle_health(bundle, config.labels, schemas) for bundle in bundles]
    findings += _bundle_findings(storage, bundles, health, config)
    scanned = {bundle.path: bundle for bundle in bundles}
    any_eligible = any(h.eligible for h in health)
    active_id: str | None = None
    aliases: list[AliasHealth] = []
    carried: dict[str, list[str]] = {}
    for alias in dict.fromkeys([DEFAULT_ALIAS, *storage.alias_names()]):
        pointer, model_id, pointer_findings = _check_pointer(
            storage, scanned, any_eligible, alias, config
        )
        findings += pointer_findings
        findings += _check_pointer_id(root, pointer, alias)
        findings += storage.audit_history(alias, pointer)
        if alias == DEFAULT_ALIAS:
            active_id = model_id
        if pointer is not None and (
            alias != DEFAULT_ALIAS or storage.head(pointer_key(alias)) is not None
        ):
            aliases.append(AliasHealth(name=alias, model_id=model_id, pinned=pointer.pinned))
        if model_id is not None:
            carried.setdefault(model_id, []).append(alias)
        if pointer is not None and pointer.pinned and pointer_findings:
            findings.append(_pinned_unusable(alias, pointer_findings[0]))
    # What some pointer serves is always hashed where its files are at hand; on an object
    # store that means downloading them, so there only --deep does (sizes are checked).
    hashed = set() if storage.remote else set(carried)
    manifests, integrity_findings = _check_integrity(storage, bundles, hashed, deep=deep)
    findings += integrity_findings
    health = [
        h.model_copy(
            update={
                "active": h.model_id == active_id,
                "manifest": manifests[h.model_id],
                "aliases": carried.get(h.model_id, []),
            }
        )
        for h in health
    ]
    index_state, index_findings = _check_index(storage)
    findings += index_findings
    findings += storage.audit_layout()
    return VerifyReport(
        models_dir=storage.url,
        healthy=not any(f.severity == "error" for f in findings),
        active_model_id=active_id,
        index_state=index_state,
        bundles=health,
        findings=findings,
        aliases=aliases,
    )


def _load_config(
    root: Path, labels: str | Sequence[str] | None
) -> tuple[RegistryConfig, list[Finding]]:
    """The registry's configuration, or the defaults and an error finding saying so."""
    try:
        return load_registry_config(root, labels=labels), []
    except RegistryConfigError as exc:
        message = (
            f"{exc} Until then taskclf commands refuse this registry; the bundle checks "
            "below judged it against taskclf's default labels and schemas"
        )
        return DEFAULT_REGISTRY_CONFIG, [_error("config-invalid", message, root / CONFIG_FILE)]


def _pinned_unusable(alias: str, problem: Finding) -> Finding:
    message = (
        f"{pointer_label(alias)} is pinned, but its bundle cannot be used ({problem.code}): "
        "resolution refuses it and serves the best eligible bundle instead, and no automatic "
        f"move will fix it while it is pinned; {_fix_pointer(alias)} (add --unpin to release it)"
    )
    path = Path(problem.path) if problem.path is not None else Path()
    return _error("alias-pinned-unusable", message, path, problem.model_id)


def _bundle_health(
    bundle: ModelBundle, labels: Sequence[str], schemas: Mapping[str, str]
) -> BundleHealth:
    problem = declared_incompatibility(bundle, labels, schemas)
    compatible = problem is None
    return BundleHealth(
        model_id=bundle.model_id,
        valid=bundle.valid,
        compatible=compatible,
        eligible=compatible and passes_constraints(bundle, SelectionPolicy()),
        reason=problem,
    )


def _bundle_findings(
    storage: Storage,
    bundles: list[ModelBundle],
    health: list[BundleHealth],
    config: RegistryConfig,
) -> list[Finding]:
    root = storage.root_path
    findings: list[Finding] = []
    for bundle, state in zip(bundles, health, strict=True):
        if not bundle.valid and (finding := _not_a_bundle(storage, bundle)) is not None:
            findings.append(finding)
        elif not bundle.valid:
            message = (
                f"Bundle {bundle.model_id} is invalid ({bundle.invalid_reason}); fix "
                f"or remove {bundle.path} (`taskclf model prune --include-invalid`)"
            )
            findings.append(_error("bundle-invalid", message, bundle.path, bundle.model_id))
        elif not state.compatible:
            why = explain_incompatibility(
                bundle, str(state.reason), config.labels, config.schema_hashes
            )
            message = (
                f"Bundle {bundle.model_id} is valid but not eligible ({why}); "
                "set-active and rollback refuse it; prune it if it is no longer needed"
            )
            findings.append(_warning("bundle-incompatible", message, bundle.path, bundle.model_id))
    if not any(state.eligible for state in health):
        message = (
            f"No eligible bundle in {root} ({len(bundles)} bundle(s) scanned); nothing "
            "can be activated: add one with `taskclf model promote CANDIDATE_DIR`"
        )
        findings.append(_error("no-eligible-bundle", message, root))
    return findings


def _not_a_bundle(storage: Storage, bundle: ModelBundle) -> Finding | None:
    """A finding for an "invalid bundle" that is no bundle at all, never advising a deletion."""
    root = storage.root_path
    path, model_id = bundle.path, bundle.model_id
    entry = storage.registry_entry(model_id)
    if entry is not None:
        message = (
            f"{path} is a registry, not a bundle (it holds {entry}); the models directory "
            f"probably should be {path} (`taskclf model verify --models-dir {path}`), "
            f"otherwise move it out of {root}"
        )
        return _error("registry-not-bundle", message, path, model_id)
    if not storage.looks_like_bundle(model_id):
        message = (
            f"{path} is not a bundle (it holds none of {', '.join(BUNDLE_FILES)}) but sits "
            f"in the registry {root}, where scans list it as invalid; move it out of the "
            "registry (taskclf never deletes it)"
        )
        return _error("not-a-bundle", message, path, model_id)
    return None


_CONSISTENCY_TOLERANCE = 1e-6
_NON_ARTIFACTS = frozenset({METADATA_FILE, METRICS_FILE, MANIFEST_FILE, CONFUSION_MATRIX_FILE})
_UNSEALED_SHOWN = 10


def _check_integrity(
    storage: Storage, bundles: list[ModelBundle], served: Collection[str], *, deep: bool
) -> tuple[dict[str, Literal["unsealed", "match", "mismatch"]], list[Finding]]:
    """Each bundle's manifest status, and the manifest and consistency findings.

    The bundles in ``served`` (what the active pointer and every alias locate:
    each is loaded somewhere) are always hashed; the others only with ``deep``.
    """
    statuses: dict[str, Literal["unsealed", "match", "mismatch"]] = {}
    findings: list[Finding] = []
    unsealed: list[str] = []
    for bundle in bundles:
        result = storage.check_manifest(bundle.model_id, deep=deep or bundle.model_id in served)
        statuses[bundle.model_id] = result.status
        if result.status == "unsealed":
            unsealed.append(bundle.model_id)
        for problem in result.problems:
            message = (
                f"Bundle {bundle.model_id} ({bundle.path}) does not match its manifest.json: "
                f"{problem.problem}; {mismatch_advice(bundle.model_id, bundle.path)}"
            )
            findings.append(
                _error(
                    "bundle-manifest-mismatch", message, bundle.path / problem.file, bundle.model_id
                )
            )
        findings += _consistency_findings(bundle)
        if bundle.valid and not _has_artifact(bundle.path):
            message = (
                f"Bundle {bundle.model_id} ({bundle.path}) holds no model file besides its "
                "metadata and metrics; nothing could be loaded from it"
            )
            findings.append(_warning("bundle-no-artifact", message, bundle.path, bundle.model_id))
    if unsealed:
        shown = ", ".join(unsealed[:_UNSEALED_SHOWN])
        if len(unsealed) > _UNSEALED_SHOWN:
            shown += f" and {len(unsealed) - _UNSEALED_SHOWN} more"
        message = (
            f"{len(unsealed)} bundle(s) have no manifest.json, so their files cannot be "
            f"checked ({shown}); they stay usable; seal one with `taskclf model seal ID`"
        )
        findings.append(
            Finding(severity="info", code="bundle-unsealed", message=message, path=None)
        )
    return statuses, findings


def _has_artifact(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(entry.name not in _NON_ARTIFACTS for entry in entries)
    except OSError:
        return True  # unreadable: reported elsewhere, not as "no artifact"


def _consistency_findings(bundle: ModelBundle) -> list[Finding]:
    """Declared scores vs. the confusion matrix, metrics labels vs. metadata labels."""
    metrics, metadata = bundle.metrics, bundle.metadata
    if not bundle.valid or metrics is None or metadata is None:
        return []
    findings: list[Finding] = []
    macro, weighted = f1_summary(metrics.confusion_matrix, check=False)
    wrong = [
        f"{name} {declared} (the matrix gives {computed:.6f})"
        for name, declared, computed in (
            ("macro_f1", metrics.macro_f1, macro),
            ("weighted_f1", metrics.weighted_f1, weighted),
        )
        if abs(declared - computed) > _CONSISTENCY_TOLERANCE
    ]
    if wrong:
        message = (
            f"Bundle {bundle.model_id} declares {' and '.join(wrong)} in metrics.json, which "
            "its confusion matrix contradicts; it may rank wrongly: recompute the scores "
            "(save_bundle does) or remove the bundle"
        )
        findings.append(
            _error("bundle-metrics-inconsistent", message, bundle.path, bundle.model_id)
        )
    names, label_set = set(metrics.label_names), set(metadata.label_set)
    if names != label_set:
        parts = []
        if label_set - names:
            parts.append(f"missing {', '.join(sorted(label_set - names))}")
        if names - label_set:
            parts.append(f"extra {', '.join(sorted(names - label_set))}")
        message = (
            f"Bundle {bundle.model_id}'s metrics.json label_names differ from metadata.json's "
            f"label_set ({'; '.join(parts)}); its scores describe other classes: rebuild it"
        )
        findings.append(_error("bundle-labels-inconsistent", message, bundle.path, bundle.model_id))
    return findings


def _warning(code: str, message: str, path: Path, model_id: str | None = None) -> Finding:
    return Finding(
        severity="warning", code=code, message=message, path=str(path), model_id=model_id
    )


def _error(code: str, message: str, path: Path, model_id: str | None = None) -> Finding:
    return Finding(severity="error", code=code, message=message, path=str(path), model_id=model_id)


def _check_pointer(
    storage: Storage,
    scanned: Mapping[Path, ModelBundle],
    any_eligible: bool,
    alias: str,
    config: RegistryConfig,
) -> tuple[ActivePointer | None, str | None, list[Finding]]:
    """The pointer (if it parses), the id of the bundle it locates (if any), findings.

    The pointed bundle is taken from the scan (``scanned``, by path), so its
    pointer findings and its bundle health come from one read of its files.
    """
    root = storage.root_path
    key = pointer_key(alias)
    path = root / key
    label = pointer_label(alias)
    fix = _fix_pointer(alias)
    try:
        raw, _ = storage.read(key)
    except FileNotFoundError:
        if not any_eligible or alias != DEFAULT_ALIAS:
            return None, None, []
        message = (
            f"No active pointer {path} although eligible bundles exist; run "
            "`taskclf model resolve` (repairs it) or `taskclf model set-active --model-id ID`"
        )
        return None, None, [_error("pointer-missing", message, path)]
    except OSError as exc:
        message = f"{label} {path} is unreadable ({exc}); {fix}"
        return None, None, [_error("pointer-unreadable", message, path)]
    try:
        pointer = ActivePointer.model_validate_json(raw)
    except ValidationError as exc:
        what = "not JSON" if is_json_error(exc.errors()) else "not a valid pointer"
        message = f"{label} {path} is {what}; {fix}"
        return None, None, [_error("pointer-invalid", message, path)]
    located = locate_pointed_bundle(root, pointer.model_dir, model_id=pointer.model_id)
    if located is None:
        message = (
            f"{label} {path} names {pointer.model_dir!r}, which is outside the registry; {fix}"
        )
        return pointer, None, [_error("pointer-escapes", message, path)]
    bundle = scanned.get(located)
    if bundle is None:
        # Not in the scan: created since, or a name scans skip (not UTF-8).
        bundle = storage.read_bundle(located.name)
    if bundle is None:
        message = f"{label} {path} locates {located}, which does not exist; {fix}"
        return pointer, None, [_error("pointer-target-missing", message, path)]
    model_id = bundle.model_id
    if not bundle.valid:
        message = (
            f"{label} {path} locates invalid bundle {model_id} ({bundle.invalid_reason}); {fix}"
        )
        return pointer, model_id, [_error("pointer-target-invalid", message, path, model_id)]
    problem = declared_incompatibility(bundle, config.labels, config.schema_hashes)
    if problem is not None:
        problem = explain_incompatibility(bundle, problem, config.labels, config.schema_hashes)
        message = (
            f"{label} {path} locates bundle {model_id}, which is not compatible ({problem}); {fix}"
        )
        code = "pointer-target-incompatible"
        return pointer, model_id, [_error(code, message, path, model_id)]
    return pointer, model_id, []


def _check_pointer_id(root: Path, pointer: ActivePointer | None, alias: str) -> list[Finding]:
    """A pointer whose ``model_id`` names another bundle than its ``model_dir`` (a hand edit)."""
    if pointer is None or pointer.model_id is None:
        return []
    followed = pointer_bundle_name(pointer)
    if followed is None or followed == pointer.model_id:
        return []
    path = root / pointer_key(alias)
    flag = "" if alias == DEFAULT_ALIAS else f" --alias {alias}"
    message = (
        f"{pointer_label(alias)} {path} says model_id {pointer.model_id!r} but its model_dir "
        f"{pointer.model_dir!r} names {followed!r}; resolution follows model_dir, so "
        f"{followed} is what runs and what taskclf reports: run `taskclf model set-active{flag} "
        f"--model-id {followed}` (or the id you meant) to make them agree"
    )
    return [_warning("pointer-id-mismatch", message, path, followed)]


def check_history_file(root: Path, pointer: ActivePointer | None, alias: str) -> list[Finding]:
    """``alias``'s ``*_history.jsonl`` against its pointer (the local history format)."""
    paths = alias_paths(root, alias)
    path = paths.history
    try:
        # A long-lived history may outgrow the read cap; its newest entries are what
        # the chain and pointer checks need (line numbers then count from the tail).
        raw, skipped, oversized = read_tail(path)
    except FileNotFoundError:
        if pointer is None:
            return []
        message = (
            f"No history {path} although the pointer {paths.pointer.name} exists (written by "
            "hand or by an old tool); the next set-active, promotion or rollback starts it"
        )
        return [_warning("history-missing", message, path)]
    except OSError as exc:
        message = f"History {path} is unreadable ({exc}); make it a readable regular file"
        return [_error("history-unreadable", message, path)]

    findings: list[Finding] = []
    if skipped:
        message = (
            f"History {path} is larger than the read limit; only its newest entries were "
            f"checked (the first {skipped} bytes were skipped); archive old entries to shrink it"
        )
        findings.append(_warning("history-large", message, path))
    for number, size in oversized:
        message = (
            f"Line {number} of {path} is {size} bytes, larger than the {MAX_FILE_BYTES} byte "
            "read limit (a torn or corrupted write); it was skipped, the other entries were "
            "read: remove that line"
        )
        findings.append(_error("history-line-oversized", message, path))
    entries: list[tuple[int, ActiveHistoryEntry]] = []
    for number, parsed in parse_history_lines(raw):
        if isinstance(parsed, ActiveHistoryEntry):
            entries.append((number, parsed))
        else:
            message = (
                f"Line {number} of {path} does not parse (a torn write or a hand edit); "
                "remove that line (the other entries are intact)"
            )
            findings.append(_error("history-line-invalid", message, path))
    for (previous_number, previous), (number, entry) in itertools.pairwise(entries):
        if entry.old == previous.new:
            continue
        if entry.old == previous.old:
            message = (
                f"Line {previous_number} of {path} records a switch to "
                f"{_describe(previous.new)} that never took effect (a crash between the "
                "history append and the pointer replace); harmless: the next entry continues "
                "from the pointer that stayed active"
            )
            findings.append(_warning("history-uncommitted-entry", message, path))
            continue
        message = (
            f"Line {number} of {path} switches from {_describe(entry.old)} but line "
            f"{previous_number} switched to {_describe(previous.new)}: the pointer was replaced, "
            "deleted or corrupted outside taskclf in between; the audit trail has a gap there "
            f"(nothing to do, the history is append-only; keep {paths.pointer.name} under "
            "taskclf's control)"
        )
        findings.append(_warning("history-chain-broken", message, path))
    if entries:
        number, last = entries[-1]
        if last.new != pointer:
            findings.append(_mismatch(paths, number, last, pointer, alias))
    return findings


def _mismatch(
    paths: AliasPaths,
    number: int,
    last: ActiveHistoryEntry,
    pointer: ActivePointer | None,
    alias: str,
) -> Finding:
    path = paths.history
    current = _describe(pointer)
    shown = paths.pointer.name
    if last.old == pointer:
        cause = (
            f"records a switch to {_describe(last.new)} that {shown} does not show (it "
            f"still names {current}); this is what a crash between the history append and "
            "the pointer replace leaves"
        )
    else:
        cause = (
            f"says the pointer is {_describe(last.new)} but {shown} names {current}; "
            f"{shown} was changed without the history, or a crash interrupted a write"
        )
    message = f"The last entry (line {number}) of {path} {cause}; {_fix_pointer(alias)}"
    return _error("history-pointer-mismatch", message, path)


def _describe(pointer: ActivePointer | None) -> str:
    if pointer is None:
        return "no pointer"
    return f"{pointer.model_dir!r} (selected_at {pointer.selected_at})"


def _check_index(
    storage: Storage,
) -> tuple[Literal["missing", "fresh", "stale", "invalid"], list[Finding]]:
    root = storage.root_path
    path = root / INDEX_FILE
    advice = "run `taskclf model index` to rebuild it"
    try:
        cache = IndexCache.model_validate_json(storage.read(INDEX_FILE)[0])
    except FileNotFoundError:
        message = f"No index cache {path}; {advice} (optional: selection never reads it)"
        finding = _warning("index-missing", message, path)
        return "missing", [finding]
    except (OSError, ValidationError) as exc:
        detail = "not a valid index" if isinstance(exc, ValidationError) else str(exc)
        message = f"Index cache {path} is unusable ({detail}); {advice}"
        finding = _warning("index-invalid", message, path)
        return "invalid", [finding]
    reasons = index_staleness(root, cache)
    if not reasons:
        return "fresh", []
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    message = f"Index cache {path} is stale ({shown}); {advice}"
    return "stale", [_warning("index-stale", message, path)]


_PRUNE_SWEEPS = (
    "`taskclf model prune` removes it once it is over an hour old (or delete it now if no "
    "taskclf command is running)"
)
_LEFTOVERS = {
    "temp": ("leftover-temp-file", "a temporary file left by an interrupted write", _PRUNE_SWEEPS),
    "trash": (
        "leftover-trash-dir",
        "a trash directory left by an interrupted prune",
        _PRUNE_SWEEPS,
    ),
    "staging": (
        "leftover-staging-dir",
        "a staging directory left by a promotion",
        "if no promotion is running, check it (after a crash during `promote --move` it may "
        "hold the only copy of the candidate), then move the bundle out or delete it",
    ),
}


def check_leftovers(root: Path) -> list[Finding]:
    """Leftovers of interrupted operations and symlinked registry files (a local registry)."""
    findings: list[Finding] = []
    try:
        with os.scandir(root) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return findings
    registry_files = {ACTIVE_FILE, HISTORY_FILE, INDEX_FILE, LOCK_FILE, ALIAS_DIR}
    findings += _check_alias_dir(root)
    for entry in entries:
        path = Path(entry.path)
        name = entry.name
        kind = leftover_kind(name)
        if kind is not None:
            code, what, advice = _LEFTOVERS[kind]
            findings.append(_error(code, f"{path} is {what}; {advice}", path))
        elif name in registry_files and _is_symlink(path):
            message = (
                f"{path} is a symlink; the registry never writes through symlinks, so writes "
                "will fail: replace it with a regular file"
            )
            findings.append(_error("registry-file-symlink", message, path))
    return findings


def _is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _check_alias_dir(root: Path) -> list[Finding]:
    """``.aliases`` itself (a symlink, not a directory), its temp files and symlinked files."""
    directory = root / ALIAS_DIR
    problem = alias_dir_problem(root)
    if problem is not None:
        if _is_symlink(directory):
            # Reported with the other symlinked registry files.
            return []
        return [_error("alias-dir-unusable", f"{directory} {problem}", directory)]
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return []
    findings: list[Finding] = []
    for entry in entries:
        path = Path(entry.path)
        if leftover_kind(entry.name) == "temp":
            code, what, advice = _LEFTOVERS["temp"]
            findings.append(_error(code, f"{path} is {what}; {advice}", path))
        elif _is_symlink(path):
            message = (
                f"{path} is a symlink; the registry never writes through symlinks, so writes "
                "to this alias will fail: replace it with a regular file"
            )
            findings.append(_error("registry-file-symlink", message, path))
    return findings


def check_history_chain(storage: Storage, alias: str) -> list[Finding]:
    """``alias``'s chain of history objects against its pointer (the object-store format)."""
    from taskclf.model_registry.storage.chain import (
        chain_state,
        entry_seq,
        read_history_chain,
        read_pointer,
    )

    state = read_pointer(storage, alias)
    chain = read_history_chain(storage, state, alias)
    head = chain_state(state)
    shown = pointer_key(alias)
    findings = [
        Finding(
            severity="error",
            code="history-line-invalid",
            message=f"history entry {key} does not parse",
            path=f"{storage.url}/{key}",
        )
        for key in chain.unreadable
    ]
    if state.pointer is not None and head.entry is not None and not chain.committed:
        findings.append(
            Finding(
                severity="error",
                code="history-missing",
                message=f"{shown}'s history entry {head.entry} is missing",
            )
        )
    for (_, before), (key, entry) in itertools.pairwise(chain.committed):
        if entry.old != before.new:
            findings.append(
                Finding(
                    severity="warning",
                    code="history-chain-broken",
                    message=(
                        f"history entry {key} switches from {_named(entry.old)} but the "
                        f"entry before it switched to {_named(before.new)}: {shown} "
                        "was replaced or corrupted outside taskclf in between; the audit trail "
                        f"has a gap there (keep {shown} under taskclf's control)"
                    ),
                    path=f"{storage.url}/{key}",
                )
            )
    if (
        chain.committed
        and state.pointer is not None
        and chain.committed[-1][1].new != state.pointer
    ):
        findings.append(
            Finding(
                severity="error",
                code="history-pointer-mismatch",
                message=f"the newest history entry does not match {shown}",
            )
        )
    for info in chain.uncommitted:
        pending = entry_seq(info.key) == head.seq + 1
        findings.append(
            Finding(
                severity="warning",
                code="history-uncommitted-entry",
                message=(
                    f"history entry {info.key} is not on the committed chain ("
                    + (
                        "a change being written now, or a writer that crashed between "
                        "creating its entry and swapping the pointer"
                        if pending
                        else "a writer that lost its compare-and-swap and could not remove it"
                    )
                    + "); readers ignore it, `taskclf model prune` removes it after an hour"
                ),
                path=f"{storage.url}/{info.key}",
            )
        )
    return findings


def _named(pointer: ActivePointer | None) -> str:
    return (
        "no model" if pointer is None else repr(pointer_bundle_name(pointer) or pointer.model_dir)
    )


def check_uploads(storage: Storage, names: list[str]) -> list[Finding]:
    """Incomplete uploads of an object store (files without a ``manifest.json``)."""
    return [
        Finding(
            severity="warning",
            code="leftover-staging-dir",
            message=(
                f"{name}: files without a manifest.json (an incomplete or interrupted "
                "upload); invisible to readers, `taskclf model prune` removes it after an hour"
            ),
            path=f"{storage.url}/{name}",
        )
        for name in names
    ]
