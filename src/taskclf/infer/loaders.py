"""Loaders for the model formats users ship, each behind an extra and imported lazily.

Any of them can be handed to
:class:`~taskclf.infer.resolve.ActiveModelReloader` as its ``loader``:

- :func:`load_lightgbm`: a LightGBM text model (``Booster.save_model``),
  format ``lightgbm-text``, extra ``taskclf[lightgbm]``;
- :func:`load_skops`: a scikit-learn estimator saved with
  ``skops.io.dump``, format ``sklearn-skops``, extra ``taskclf[sklearn]``.
  skops rebuilds the object without running pickle's arbitrary code; any
  type outside skops' trusted defaults is refused unless the caller lists
  it in ``trusted``;
- :func:`load_model`: whichever of the two the bundle's ``metadata.json``
  declares as ``model_format`` (``save_bundle(model_format=...)``).

Plain pickle and joblib are deliberately not offered: loading a pickle
runs whatever code the file says, so a registry that accepts bundles
from a training pipeline would hand that pipeline (or anyone who can
write a bundle) code execution in every inference process. Convert such
models once with ``skops.io.dump``.

The artifact is found through ``metadata.json``'s ``model_files`` (paths
relative to the bundle, written by ``save_bundle``); bundles without that
key use ``model.txt`` (LightGBM) or ``model.skops`` (skops). An artifact
path that leaves the bundle, or a symlink, is refused. These loaders do
not check ``manifest.json``: the reloader does before it calls them; a
direct caller can call ``require_sealed_match`` first.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from taskclf.model_registry._fs import absolute, read_capped
from taskclf.model_registry.errors import MissingExtraError, ModelLoadError
from taskclf.model_registry.scan import METADATA_FILE, read_metadata_document

LIGHTGBM_TEXT = "lightgbm-text"
SKLEARN_SKOPS = "sklearn-skops"

_MODEL_CAP = 4 * 1024**3
"""Largest artifact read (4 GiB): a bound on memory, far above any model we have seen."""

_DEFAULT_FILES = {LIGHTGBM_TEXT: "model.txt", SKLEARN_SKOPS: "model.skops"}
_SUFFIXES = {LIGHTGBM_TEXT: ".txt", SKLEARN_SKOPS: ".skops"}


def load_lightgbm(bundle_dir: str | os.PathLike[str]) -> Any:
    """Load a bundle's LightGBM text model.

    Args:
        bundle_dir: The bundle directory.

    Returns:
        A ``lightgbm.Booster``.

    Raises:
        MissingExtraError: (an ``ImportError``) lightgbm is not installed
            (``pip install 'taskclf[lightgbm]'``).
        ModelLoadError: (a ``ValueError``) no usable artifact, or LightGBM
            rejects it.
    """
    try:
        import lightgbm
    except ImportError:
        raise MissingExtraError(LIGHTGBM_TEXT, "lightgbm", "lightgbm") from None
    root = absolute(bundle_dir)
    path = _artifact(root, LIGHTGBM_TEXT, _metadata(root))
    data = _read_artifact(root, path)
    try:
        text = data.decode("utf-8")
        return lightgbm.Booster(model_str=text)
    except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(root, f"{path.name} is not a LightGBM text model ({detail})") from None


def load_skops(bundle_dir: str | os.PathLike[str], *, trusted: Sequence[str] | None = None) -> Any:
    """Load a bundle's scikit-learn estimator saved with ``skops.io.dump``.

    Args:
        bundle_dir: The bundle directory.
        trusted: Fully qualified type names to allow beyond skops' defaults
            (``skops.io.get_untrusted_types`` lists what a file needs). Only
            list types whose code you trust.

    Returns:
        The estimator.

    Raises:
        MissingExtraError: (an ``ImportError``) scikit-learn or skops is not
            installed (``pip install 'taskclf[sklearn]'``).
        ModelLoadError: (a ``ValueError``) no usable artifact, skops rejects
            it, or it holds types that are not trusted (listed in the
            message and in ``untrusted``).
    """
    try:
        import sklearn  # noqa: F401  # skops imports it lazily; fail early and say which extra
        import skops.io as sio
    except ImportError as exc:
        missing = "scikit-learn" if getattr(exc, "name", "") == "sklearn" else "skops"
        raise MissingExtraError(SKLEARN_SKOPS, "sklearn", missing) from None
    root = absolute(bundle_dir)
    path = _artifact(root, SKLEARN_SKOPS, _metadata(root))
    # One read serves the type check and the load: the file cannot change in between.
    data = _read_artifact(root, path)
    allowed = set(trusted or ())
    try:
        needed = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(root, f"{path.name} is not a skops file ({exc})") from None
    refused = [name for name in needed if name not in allowed]
    if refused:
        raise ModelLoadError(
            root,
            f"{path.name} holds types skops does not trust by default: {', '.join(refused)}; "
            "pass them in trusted=[...] only if you trust their code",
            refused,
        )
    try:
        return sio.load(io.BytesIO(data), trusted=[name for name in needed if name in allowed])
    except Exception as exc:
        raise ModelLoadError(root, f"skops could not load {path.name} ({exc})") from None


LOADERS: Mapping[str, Callable[..., Any]] = {
    LIGHTGBM_TEXT: load_lightgbm,
    SKLEARN_SKOPS: load_skops,
}
"""The loader of each ``model_format`` :func:`load_model` understands."""


def load_model(bundle_dir: str | os.PathLike[str], *, trusted: Sequence[str] | None = None) -> Any:
    """Load a bundle's model with the loader its ``metadata.json`` ``model_format`` names.

    For the reloader, bind ``trusted`` first:
    ``ActiveModelReloader(models_dir, loader=functools.partial(load_model, trusted=[...]))``.

    Args:
        bundle_dir: The bundle directory.
        trusted: For ``sklearn-skops``, the extra types to trust (see :func:`load_skops`).

    Returns:
        What the format's loader returns (a ``lightgbm.Booster``, an estimator).

    Raises:
        MissingExtraError: The format's library is not installed (the
            message says which ``pip install 'taskclf[...]'``).
        ModelLoadError: No ``model_format``, an unknown one, or the loader
            failed.
    """
    root = absolute(bundle_dir)
    model_format = _metadata(root).get("model_format")
    known = ", ".join(LOADERS)
    if model_format is None:
        raise ModelLoadError(
            root,
            f"{METADATA_FILE} declares no model_format; package the bundle with "
            f"save_bundle(model_format=...) ({known}) or call a loader directly",
        )
    loader = LOADERS.get(model_format) if isinstance(model_format, str) else None
    if loader is None:
        raise ModelLoadError(
            root, f"unknown model_format {model_format!r} (known: {known}); pass your own loader"
        )
    if model_format == SKLEARN_SKOPS:
        return load_skops(root, trusted=trusted)
    return loader(root)


def _metadata(root: Path) -> dict[str, Any]:
    """``metadata.json`` as a dict, extension keys included (ModelMetadata drops them)."""
    try:
        return read_metadata_document(root)
    except FileNotFoundError:
        if not root.is_dir():
            raise ModelLoadError(root, "the bundle directory does not exist") from None
        raise ModelLoadError(root, f"it has no {METADATA_FILE}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(root, f"{METADATA_FILE} is unreadable ({exc})") from None


def _artifact(root: Path, model_format: str, metadata: Mapping[str, Any]) -> Path:
    """The artifact file of ``model_format``, from ``model_files`` or the default name."""
    files = metadata.get("model_files")
    if files is None:
        return root / _DEFAULT_FILES[model_format]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ModelLoadError(root, f"{METADATA_FILE}'s model_files is not a list of paths")
    suffix = _SUFFIXES[model_format]
    candidates = files if len(files) == 1 else [f for f in files if f.endswith(suffix)]
    if len(candidates) != 1:
        raise ModelLoadError(
            root,
            f"{METADATA_FILE}'s model_files ({', '.join(files) or 'none'}) does not name "
            f"exactly one {suffix} file for {model_format}",
        )
    relative = PurePosixPath(candidates[0])
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise ModelLoadError(root, f"model file {candidates[0]!r} is outside the bundle")
    return root.joinpath(*relative.parts)


def _read_artifact(root: Path, path: Path) -> bytes:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ModelLoadError(root, f"the model file {path.name} is missing") from None
    except OSError as exc:
        raise ModelLoadError(root, f"the model file {path.name} is unreadable ({exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise ModelLoadError(root, f"the model file {path.name} is a symlink; bundles hold files")
    try:
        return read_capped(path, _MODEL_CAP)
    except OSError as exc:
        raise ModelLoadError(root, f"the model file {path.name} is unreadable ({exc})") from None
