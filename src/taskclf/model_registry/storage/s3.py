"""The storage seam on S3-compatible object storage, through obstore.

Object stores have no rename and no locks; what they do have since 2024
(AWS S3, MinIO, R2, moto) are conditional writes: ``If-None-Match: *``
creates an object only if absent, ``If-Match: <etag>`` replaces it only if
unchanged. Those two are the whole concurrency story: :meth:`S3Storage.create`
and :meth:`S3Storage.replace` map onto them one to one. A store that
ignores them would silently let two writers race, so before the first
write the store is probed once, and a store that fails the probe is
refused with one sentence.

Credentials, region and endpoint come from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``); with ``AWS_PROFILE`` set and boto3
installed, the profile's credentials are used. A plain ``http://``
endpoint (MinIO on a laptop, the tests' loopback server) is allowed.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import posixpath
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskclf.model_registry._fs import MAX_FILE_BYTES
from taskclf.model_registry.errors import (
    RegistryConflictError,
    StorageError,
    StorageExtraMissingError,
)
from taskclf.model_registry.storage import chain
from taskclf.model_registry.storage.base import (
    MANIFEST_KEY,
    WRITE_ATTEMPTS,
    Decide,
    FileKind,
    ObjectInfo,
    PointerRead,
    Storage,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from obstore.store import S3Store

    from taskclf.model_registry.manifest import ManifestCheck, ManifestProblem
    from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer, ModelBundle
    from taskclf.model_registry.verify import Finding

TRANSFER_CONCURRENCY = 16
"""Most requests a scan, upload or download keeps in flight at once."""

_PROBE_PREFIX = ".taskclf-probe"


def _import_obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise StorageExtraMissingError() from None
    return obstore


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as ``("bucket", "some/prefix")``.

    Raises:
        StorageError: No bucket name.
    """
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError(url, "names no bucket; write it as s3://BUCKET/PREFIX", errno.EINVAL)
    return bucket, prefix.strip("/")


class S3Storage(Storage):
    """A registry under a prefix of an S3-compatible bucket."""

    remote = True

    def __init__(self, url: str) -> None:
        """Configure the client; no request is made here.

        Args:
            url: ``s3://bucket/prefix`` (the prefix may be empty).

        Raises:
            StorageExtraMissingError: obstore is not installed.
            StorageError: The URL names no bucket.
        """
        self._obstore = _import_obstore()
        self.bucket, self.prefix = split_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        # A Path folds the "//" (s3:/bucket/prefix/<id>); remote_url() restores it.
        self.root_path = Path(self.url)
        self.name = posixpath.basename(self.prefix) or "models"
        self._store = self._make_store()
        self._probed = False
        self._probe_lock = threading.Lock()

    def _make_store(self) -> S3Store:
        from obstore.store import S3Store

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, Any] = {
            "client_options": {
                # MinIO on a laptop and the tests' loopback server speak plain http.
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
            },
            # 5xx, throttling (503 SlowDown) and dropped connections are retried
            # with exponential backoff and jitter; bounded so a dead endpoint
            # fails in seconds rather than minutes.
            "retry_config": {
                "max_retries": 4,
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
                "retry_timeout": timedelta(seconds=60),
            },
        }
        if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
            kwargs["region"] = "us-east-1"
        if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs["credential_provider"] = _profile_credentials()
        return S3Store(self.bucket, prefix=self.prefix or None, **kwargs)

    # -- error translation -------------------------------------------------

    def _fail(self, exc: Exception, doing: str) -> StorageError:
        text = str(exc)
        exceptions = self._obstore.exceptions
        if "NoSuchBucket" in text:
            return StorageError(
                self.url,
                f"bucket {self.bucket!r} does not exist; create it or fix the URL",
                errno.ENOENT,
            )
        if isinstance(exc, exceptions.PermissionDeniedError | exceptions.UnauthenticatedError) or (
            "InvalidAccessKeyId" in text
            or "SignatureDoesNotMatch" in text
            or "AccessDenied" in text
        ):
            return StorageError(
                self.url,
                f"the store refused the credentials while {doing}; check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
                errno.EACCES,
            )
        first_line = text.splitlines()[0] if text else type(exc).__name__
        return StorageError(
            self.url,
            f"{doing} failed ({first_line[:300]}); check AWS_ENDPOINT_URL and the network",
        )

    def _call(self, doing: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise self._fail(exc, doing) from None
            raise
        except self._obstore.exceptions.BaseError as exc:
            raise self._fail(exc, doing) from None

    # -- the verbs -----------------------------------------------------------

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        def run() -> list[ObjectInfo]:
            found = []
            for chunk in self._obstore.list(self._store, prefix or None, chunk_size=1000):
                for meta in chunk:
                    found.append(
                        ObjectInfo(
                            meta["path"],
                            meta["size"],
                            meta["e_tag"] or "",
                            meta["last_modified"].timestamp(),
                        )
                    )
            return found

        return sorted(self._call(f"listing {prefix or 'the registry'}", run))

    def list_bundle_names(self) -> list[str]:
        return bundle_names_from(self.list_files())

    def read(self, key: str, cap: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
        def run() -> tuple[bytes, str]:
            result = self._obstore.get(self._store, key)
            if result.meta["size"] > cap:
                raise StorageError(
                    self.url, f"{key} is larger than the {cap} byte limit", errno.EFBIG
                )
            return bytes(result.bytes()), result.meta["e_tag"] or ""

        return self._call(f"reading {key}", run)  # type: ignore[no-any-return]

    def head(self, key: str) -> str | None:
        try:
            meta = self._call(f"checking {key}", self._obstore.head, self._store, key)
        except FileNotFoundError:
            return None
        return meta["e_tag"] or ""

    def _require_conditional_writes(self) -> None:
        """Refuse to write to a store that would silently ignore ``If-None-Match``."""
        with self._probe_lock:
            if self._probed:
                return
            key = f"{_PROBE_PREFIX}/{uuid.uuid4().hex}"
            exceptions = self._obstore.exceptions
            self._call("writing a probe object", self._obstore.put, self._store, key, b"")
            try:
                self._obstore.put(self._store, key, b"", mode="create")
            except exceptions.AlreadyExistsError:
                honoured = True
            except exceptions.NotSupportedError:
                honoured = False
            except exceptions.BaseError as exc:
                honoured = False
                if "NotImplemented" not in str(exc) and "501" not in str(exc):
                    raise self._fail(exc, "probing for conditional writes") from None
            else:
                honoured = False
            finally:
                self._call("removing the probe object", self._obstore.delete, self._store, key)
            if not honoured:
                raise StorageError(
                    self.url,
                    "this store does not support conditional writes (If-None-Match / If-Match), "
                    "which the registry needs to change it safely; nothing was written",
                    errno.ENOTSUP,
                )
            self._probed = True

    def create(self, key: str, data: bytes) -> str:
        self._require_conditional_writes()
        return self._put_if(key, data, "create")

    def _put_if(self, key: str, data: bytes, mode: Any) -> str:
        exceptions = self._obstore.exceptions
        try:
            result = self._obstore.put(self._store, key, data, mode=mode)
        except (exceptions.AlreadyExistsError, exceptions.PreconditionError):
            raise RegistryConflictError(self.url, key) from None
        except exceptions.BaseError as exc:
            raise self._fail(exc, f"writing {key}") from None
        return result["e_tag"] or ""

    def replace(self, key: str, data: bytes, *, expected: str | None) -> str:
        self._require_conditional_writes()
        if expected is None:
            return self._put_if(key, data, "create")
        return self._put_if(key, data, {"e_tag": expected})

    def put(self, key: str, data: bytes) -> None:
        for _ in range(WRITE_ATTEMPTS):
            try:
                self.replace(key, data, expected=self.head(key))
            except RegistryConflictError:
                continue
            return
        raise RegistryConflictError(self.url, key)

    def bundle_changes(self, cached: set[str], cutoff_ns: int) -> tuple[list[str], dict[str, str]]:
        infos = self.list_files()
        current = bundle_names_from(infos)
        changed: dict[str, str] = {}
        for info in infos:
            name, _, file = info.key.partition("/")
            if name in cached and name not in changed and info.modified * 1e9 > cutoff_ns:
                changed[name] = file
        return current, changed

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", self._obstore.delete, self._store, key)

    def delete_tree(self, prefix: str) -> None:
        # The manifest first: the bundle leaves every listing at once, and what is
        # left of an interrupted delete is an incomplete upload, which prune removes.
        self.delete(f"{prefix}/{MANIFEST_KEY}")
        keys = [info.key for info in self.list_files(prefix)]
        if keys:
            self._call(f"deleting {prefix}", self._obstore.delete, self._store, keys)

    def upload_tree(self, source: Path, prefix: str) -> None:
        self._require_conditional_writes()
        if self.head(f"{prefix}/{MANIFEST_KEY}") is not None:
            raise RegistryConflictError(self.url, prefix)
        files = sorted(_regular_files(source))
        if MANIFEST_KEY not in files:
            raise StorageError(
                self.url,
                f"bundle {prefix} has no {MANIFEST_KEY}; remote bundles are always sealed",
                errno.EINVAL,
            )
        body = [name for name in files if name != MANIFEST_KEY]

        def put_file(name: str) -> None:
            self._call(
                f"uploading {prefix}/{name}",
                self._obstore.put,
                self._store,
                f"{prefix}/{name}",
                Path(source, name),
            )

        _run_bounded(put_file, body)
        # Last, and only if absent: this one request makes the bundle exist.
        self.create(f"{prefix}/{MANIFEST_KEY}", Path(source, MANIFEST_KEY).read_bytes())

    def staging_area(self) -> Path:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="taskclf-upload-"))

    def publish(self, staged: Path, name: str) -> None:
        from taskclf.model_registry.manifest import build_manifest, manifest_bytes

        if not (staged / MANIFEST_KEY).exists():
            (staged / MANIFEST_KEY).write_bytes(manifest_bytes(build_manifest(staged)))
        self.upload_tree(staged, name)

    def name_taken(self, name: str) -> bool:
        return self.has_bundle(name)

    def registry_entry(self, name: str = "") -> str | None:
        return None if name else "bundles sealed by their manifest.json"

    def looks_like_bundle(self, name: str) -> bool:
        return True

    def tree_sizes(self, names: list[str]) -> dict[str, int]:
        wanted = set(names)
        sizes = dict.fromkeys(names, 0)
        for info in self.list_files():
            name = info.key.partition("/")[0]
            if name in wanted:
                sizes[name] += info.size
        return sizes

    def stale_leftovers(self, min_age_s: float) -> list[Path]:
        import time

        cutoff = time.time() - min_age_s
        infos = self.list_files()
        found = [
            self.root_path / name
            for name, modified in incomplete_uploads(infos).items()
            if modified < cutoff
        ]
        prefixes = chain.history_prefixes(infos)
        for prefix in sorted(prefixes):
            alias = chain.alias_of(prefix)
            history = chain.read_history_chain(self, alias=alias)
            found += [self.root_path / i.key for i in history.uncommitted if i.modified < cutoff]
        return sorted(found)

    def remove_leftover(self, path: Path) -> None:
        key = os.fspath(path)[len(os.fspath(self.root_path)) + 1 :]
        if "/" in key:  # an uncommitted history entry; else an incomplete upload's prefix
            self.delete(key)
        else:
            self.delete_tree(key)

    def delete_bundles(self, names: list[str]) -> Callable[[], None]:
        for name in names:
            self.delete_tree(name)
        return lambda: None

    def audit_history(self, alias: str, pointer: ActivePointer | None) -> list[Finding]:
        from taskclf.model_registry.verify import check_history_chain

        del pointer  # the chain is audited against the pointer as it reads it, with its link
        return check_history_chain(self, alias)

    def audit_layout(self) -> list[Finding]:
        from taskclf.model_registry.verify import check_uploads

        return check_uploads(self, sorted(incomplete_uploads(self.list_files())))

    def local_copy(
        self, bundle: ModelBundle, cache_dir: str | os.PathLike[str] | None, *, verify: bool
    ) -> ModelBundle:
        from taskclf.model_registry.bundle_cache import fetch_bundle

        del verify  # a downloaded copy is always hashed against the manifest
        return fetch_bundle(self.url, bundle, cache_dir)

    def stamped_read(self, key: str) -> tuple[object, bytes] | None:
        try:
            data, version = self.read(key)
        except OSError:
            return None
        return version, data

    def download_tree(self, prefix: str, target: Path) -> None:
        infos = self.list_files(prefix)
        if not infos:
            raise FileNotFoundError(errno.ENOENT, "no such bundle", f"{self.url}/{prefix}")
        target.mkdir(parents=False)

        def get_file(info: ObjectInfo) -> None:
            relative = info.key[len(prefix) + 1 :]
            destination = target.joinpath(*relative.split("/"))
            destination.parent.mkdir(parents=True, exist_ok=True)
            result = self._call(f"downloading {info.key}", self._obstore.get, self._store, info.key)
            with open(destination, "wb") as handle:
                for chunk in result:
                    handle.write(chunk)

        _run_bounded(get_file, infos)

    def read_many_versioned(
        self, keys: list[str], cap: int = MAX_FILE_BYTES
    ) -> dict[str, tuple[bytes, str] | None]:
        def get(key: str) -> tuple[bytes, str] | None:
            try:
                return self.read(key, cap)
            except FileNotFoundError:
                return None

        with concurrent.futures.ThreadPoolExecutor(TRANSFER_CONCURRENCY) as pool:
            return dict(zip(keys, pool.map(get, keys), strict=True))

    # -- bundles ---------------------------------------------------------------------

    def scan_bundles(self) -> list[ModelBundle]:
        return self.scan_listing(self.list_files())

    def scan_listing(self, infos: list[ObjectInfo]) -> list[ModelBundle]:
        """:meth:`scan_bundles` of a listing already made."""
        from taskclf.model_registry.bundle_cache import ScanCache
        from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE, bundle_from_files

        names = bundle_names_from(infos)
        keys = [f"{name}/{file}" for name in names for file in (METADATA_FILE, METRICS_FILE)]
        raw = ScanCache(self).read(self, keys, infos)
        return [
            bundle_from_files(
                name,
                self.root_path / name,
                raw[f"{name}/{METADATA_FILE}"],
                raw[f"{name}/{METRICS_FILE}"],
            )
            for name in names
        ]

    def bundle_files(self, model_id: str) -> list[tuple[str, int, FileKind]]:
        prefix = f"{model_id}/"
        return [(i.key[len(prefix) :], i.size, "file") for i in self.list_files(model_id)]

    def has_bundle(self, model_id: str) -> bool:
        return self.head(f"{model_id}/{MANIFEST_KEY}") is not None

    def read_bundle(self, model_id: str) -> ModelBundle | None:
        from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE, bundle_from_files

        keys = [
            f"{model_id}/{MANIFEST_KEY}",
            f"{model_id}/{METADATA_FILE}",
            f"{model_id}/{METRICS_FILE}",
        ]
        raw = self.read_many(keys)
        if raw[keys[0]] is None:
            return None
        return bundle_from_files(model_id, self.root_path / model_id, raw[keys[1]], raw[keys[2]])

    def check_manifest(
        self, model_id: str, *, deep: bool = True, listing: list[ObjectInfo] | None = None
    ) -> ManifestCheck:
        """:meth:`Storage.check_manifest`; ``listing`` (a LIST already made) saves one request."""
        import tempfile

        from taskclf.model_registry import manifest as manifest_module

        if deep:
            with tempfile.TemporaryDirectory(prefix="taskclf-verify-") as scratch:
                target = Path(scratch) / model_id
                self.download_tree(model_id, target)
                return manifest_module.check_manifest(target, deep=True)
        return manifest_module.ManifestCheck(
            "mismatch" if (found := size_problems(self, model_id, listing)) else "match",
            found,
            deep=False,
        )

    # -- pointers: a chain of history objects, compare-and-swap on the ETag --------------

    def read_pointer(self, alias: str = "active") -> PointerRead:
        return chain.read_pointer(self, alias)

    def update_pointer(
        self, alias: str, decide: Decide, *, attempts: int = WRITE_ATTEMPTS
    ) -> tuple[PointerRead, ActiveHistoryEntry | None]:
        return chain.update_pointer(self, alias, decide, attempts=attempts)

    def read_history(self, alias: str = "active") -> list[ActiveHistoryEntry]:
        return chain.read_history(self, alias)

    def history_path(self, alias: str = "active") -> Path:
        return self.root_path / chain.history_prefix(alias)

    def alias_names(self) -> list[str]:
        return chain.alias_names(self)


def size_problems(
    storage: Storage, model_id: str, listing: list[ObjectInfo] | None = None
) -> list[ManifestProblem]:
    """A remote bundle against its manifest by what a LIST shows: presence, size, and time.

    A bundle's manifest is uploaded last, so a listed file last modified in a
    later second than ``manifest.json`` was rewritten after the bundle was
    sealed: a same-size edit, which sizes cannot show and only hashing
    (``deep``) proves, is still caught by this cheap check unless it happened
    within the second of the upload (the store's timestamps are whole seconds).
    """
    from pydantic import ValidationError

    from taskclf.model_registry.manifest import Manifest, ManifestProblem

    prefix = f"{model_id}/"
    if listing is None:
        listing = storage.list_files(model_id)
    listed = {i.key[len(prefix) :]: i for i in listing if i.key.startswith(prefix)}
    files = {name: info.size for name, info in listed.items()}
    sealed_at = listed[MANIFEST_KEY].modified if MANIFEST_KEY in listed else None
    try:
        manifest = Manifest.model_validate_json(storage.read(prefix + MANIFEST_KEY)[0])
    except FileNotFoundError:
        return [
            ManifestProblem(MANIFEST_KEY, f"{model_id} has no manifest.json (an incomplete upload)")
        ]
    except (OSError, ValidationError) as exc:
        text = f"manifest.json of {model_id} is unreadable or malformed: {exc}".splitlines()[0]
        return [ManifestProblem(MANIFEST_KEY, text)]
    problems = []
    for file, entry in sorted(manifest.files.items()):
        if file not in files:
            problems.append(ManifestProblem(file, f"{file} is listed in manifest.json but missing"))
        elif files[file] != entry.size:
            problems.append(
                ManifestProblem(
                    file, f"{file} is {files[file]} bytes, manifest.json says {entry.size}"
                )
            )
        elif sealed_at is not None and listed[file].modified > sealed_at:
            problems.append(
                ManifestProblem(
                    file,
                    f"{file} was rewritten after manifest.json was written (the bundle's "
                    "files never change after its upload)",
                )
            )
    problems += [
        ManifestProblem(file, f"{file} is not listed in manifest.json")
        for file in sorted(files)
        if file != MANIFEST_KEY and file not in manifest.files
    ]
    return problems


def incomplete_uploads(infos: list[ObjectInfo]) -> dict[str, float]:
    """Bundle prefixes holding files but no manifest: ``{name: newest file's mtime}``."""
    complete = set(bundle_names_from(infos))
    found: dict[str, float] = {}
    for info in infos:
        name, slash, _ = info.key.partition("/")
        if not slash or name in complete or name.startswith(".") or name == chain.HISTORY_PREFIX:
            continue
        found[name] = max(found.get(name, 0.0), info.modified)
    return found


def bundle_names_from(infos: Iterable[ObjectInfo]) -> list[str]:
    """The complete bundles in a listing: ``<name>/manifest.json`` present, name not dotted."""
    names = set()
    for info in infos:
        name, _, rest = info.key.partition("/")
        if rest == MANIFEST_KEY and not name.startswith("."):
            names.add(name)
    return sorted(names)


def _regular_files(root: Path) -> list[str]:
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return found


def _run_bounded(function: Callable[[Any], None], items: Iterable[Any]) -> None:
    with concurrent.futures.ThreadPoolExecutor(TRANSFER_CONCURRENCY) as pool:
        for future in [pool.submit(function, item) for item in items]:
            future.result()


def _profile_credentials() -> Any:
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise StorageError(
            "s3://",
            "AWS_PROFILE is set but boto3 is not installed; pip install boto3, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            errno.ENOENT,
        ) from None
    return Boto3CredentialProvider(boto3.Session())
