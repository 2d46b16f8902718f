"""Short, stable content hashes."""

from __future__ import annotations

import hashlib


def stable_hash(payload: str) -> str:
    """Return the first 12 hex characters of the SHA-256 of ``payload`` (UTF-8).

    Args:
        payload: Text to hash.

    Returns:
        A 12-character lowercase hex string.
    """
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
