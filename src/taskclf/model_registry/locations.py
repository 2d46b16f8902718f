"""What a registry location names: a local directory, or an object-store URL.

Standard library only: the CLI's fast path for ``taskclf model resolve``
checks a location before it imports anything heavy.
"""

from __future__ import annotations

import os

REMOTE_SCHEME = "s3://"


def is_remote(models_dir: object) -> bool:
    """True when ``models_dir`` names an object-store registry (``s3://bucket/prefix``).

    Also for a ``Path`` made from such a URL (``pathlib`` folds ``//`` into
    ``/``, as typer's path options do): a local directory cannot be called
    ``s3:`` and be a registry at the same time.
    """
    if not isinstance(models_dir, str | os.PathLike):
        return False
    text = os.fspath(models_dir)
    return isinstance(text, str) and text.startswith("s3:/")


def shown_path(path: object) -> str:
    """How messages name a location: an object-store one as ``s3://bucket/prefix/...``.

    A ``Path`` made from an ``s3://`` URL folds the double slash (``s3:/bucket``);
    messages restore it, so what they show can be pasted back as ``--models-dir``.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else str(path)
    if is_remote(text) and not text.startswith(REMOTE_SCHEME):
        return REMOTE_SCHEME + text[len("s3:/") :]
    return str(text)
