"""Rankings of an unchanged registry, kept beside its scan cache.

``find_best_model`` on a registry whose every bundle the scan cache served
unchanged ranks nothing but facts the cache file holds, so the same
request on the same cache file gets the same report. What a ranking
decided (:class:`~taskclf.model_registry.selection.Outcome`: the schema hash
ranked against, the ranked bundles' positions in the scan, best first, and
each excluded bundle's position and reason) is kept, keyed by:

* the *snapshot* of the scan
  (:attr:`~taskclf.model_registry.scan_cache.Scanned.snapshot`): a digest
  of the scan cache file's header and prelude, which name the code that
  wrote it, the registry, and the lengths and checksums of its index, stat
  keys and payloads. A scan reports one only when every bundle came from
  that file with its stat keys unchanged and the file holds no other; a scan
  that read any bundle from its files reports none, and a rewritten cache
  file has another. Either way the ranking runs as before;
* the *request*: the policy, the schema hash asked for, the label set and
  the registry's schemas (:func:`request_key`).

Anything unusable in this file (missing, damaged, another snapshot, positions
that are not one per bundle) is a miss, never an error. One file per
registry and user, beside the scan cache (``<cache dir>/scan/<registry>.ranking``),
holding at most :data:`MAX_REQUESTS` requests of one snapshot; deleting it
only makes the next ranking run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from taskclf.model_registry._fs import atomic_write
from taskclf.model_registry.caching import registry_cache_file
from taskclf.model_registry.config import RegistryConfig
from taskclf.model_registry.models import SelectionPolicy
from taskclf.model_registry.selection import Outcome

FORMAT = "taskclf-ranking-cache"
VERSION = 1
MAX_REQUESTS = 8
"""Requests remembered for one snapshot (policies, label sets, schema hashes)."""
MAX_FILE_BYTES = 64 << 20
"""A bound on what a lookup reads (a position and a reason per bundle: ~5 MB at 100,000)."""

log = logging.getLogger("taskclf.model_registry")


def cache_path(root: Path) -> Path | None:
    """The ranking cache file of the registry ``root``; ``None``: caching is off."""
    return registry_cache_file(root, "scan", ".ranking")


def request_key(
    policy: SelectionPolicy,
    required_schema_hash: str | None,
    labels: Collection[str],
    config: RegistryConfig,
) -> str:
    """Everything a ranking depends on besides the bundles' facts, as one string."""
    request = [
        policy.model_dump(mode="json"),
        required_schema_hash,
        sorted(labels),
        [schema.hash for schema in config.schemas],
    ]
    return json.dumps(request, sort_keys=True, separators=(",", ":"))


def lookup(root: Path, snapshot: str, request: str, count: int) -> Outcome | None:
    """The outcome kept for ``request`` on ``snapshot`` of ``count`` bundles, if there is one."""
    path = cache_path(root)
    if path is None:
        return None
    try:
        document = _read(path)
        if document is None or document["snapshot"] != snapshot:
            return None
        kept = document["requests"].get(request)
        return None if kept is None else _outcome(kept, count)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # not a file this version wrote: rank as if there were none


def store(root: Path, snapshot: str, request: str, outcome: Outcome) -> None:
    """Keep ``outcome`` for ``request`` on ``snapshot``; a failure only costs speed."""
    path = cache_path(root)
    if path is None:
        return
    requests: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
        document = _read(path)
        if document is not None and document["snapshot"] == snapshot:
            requests = dict(document["requests"])
            requests.pop(request, None)
    while len(requests) >= MAX_REQUESTS:
        del requests[next(iter(requests))]  # the oldest first
    requests[request] = [
        outcome.required_schema_hash,
        outcome.ranked,
        [list(pair) for pair in outcome.excluded],
    ]
    document = {"format": FORMAT, "version": VERSION, "snapshot": snapshot, "requests": requests}
    try:
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700, parents=True)
        atomic_write(path, json.dumps(document).encode("utf-8"), durable=False)
    except (OSError, ValueError) as exc:
        log.debug("Could not keep the ranking in %s: %s", path, exc)


def _read(path: Path) -> Any:
    with open(path, "rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return None
    document = json.loads(raw)
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
        or not isinstance(document.get("requests"), dict)
    ):
        return None
    return document


def _outcome(kept: Any, count: int) -> Outcome | None:
    """The outcome a kept entry holds, if it is one of a pass over ``count`` bundles."""
    required_schema_hash, ranked, excluded = kept
    if type(required_schema_hash) is not str or type(ranked) is not list:
        return None
    if type(excluded) is not list or not all(_is_exclusion(pair) for pair in excluded):
        return None
    pairs = [(position, reason) for position, reason in excluded]
    positions: Sequence[Any] = [*ranked, *(position for position, _ in pairs)]
    # Every bundle exactly once, ranked or excluded (what a selection pass returns).
    if len(positions) != count or not set(map(type, positions)) <= {int}:
        return None
    if len(set(positions)) != count or (
        count and not 0 <= min(positions) <= max(positions) < count
    ):
        return None
    return Outcome(required_schema_hash, ranked, pairs)


def _is_exclusion(pair: Any) -> bool:
    return type(pair) is list and len(pair) == 2 and type(pair[1]) is str
