"""S3 as a source: ``s3://bucket/prefix/`` roots, a bounded local download cache, S3 sidecars.

Why: load tests may upload their SQLite files to S3 instead of (or besides) a shared
volume.  SQLite cannot read from S3, so each file is downloaded once into a local
LRU cache keyed by bucket/key/ETag and read from there; a changed object has a new
ETag, hence a new cache entry, and the old one ages out.

* ``discover_s3(root, settings)`` lists with a paginator, applies the same
  include/exclude globs as local discovery (name globs to the key's basename, globs
  with a '/' to the key relative to the root; excludes also to the "folders"), skips ``-wal``/``-shm``/``-journal`` objects, and checks
  the 16-byte SQLite header with a ranged GET.  S3 objects appear only when complete,
  so ``settle_s`` does not apply.  ``mtime`` is LastModified; ``etag`` is the ETag.
* ``fetch(found, settings)`` yields a local ``Path``: download to a temp file, verify
  (``If-Match`` the listed ETag, length, MD5 for single-part unencrypted-or-SSE-S3
  objects), rename into place.  Entries in use hold a shared ``flock`` so eviction by
  another worker process never removes a file being read.
* ``put_sidecar(found, payload, settings)`` writes ``<key>.embedding_metadata.json``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbembed.discover.local import FileRef, FoundFile
from dbembed.errors import DbembedError, SourceError, UsageError, echo
from dbembed.read.header import BAD_HEADER, EMPTY, MAGIC

try:  # POSIX only; on Windows entries are protected within this process only.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from dbembed.config import SourcesSettings

log = logging.getLogger(__name__)

SQLITE_MAGIC = MAGIC
SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
SIDECAR_SUFFIX = ".embedding_metadata.json"
CACHE_SUBDIR = "s3-cache"
_HEADER_WORKERS = 8
LIST_PAGE_SIZE = 1000  # keys per ListObjectsV2 call (S3's maximum)
_STALE_PART_S = 3600.0
_ROOT_ERRORS = {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidBucketName", "403", "404"}

_clients: dict[tuple[str | None, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()
_pinned: dict[Path, int] = {}
_pinned_lock = threading.Lock()


def is_s3_uri(path: str) -> bool:
    return path.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    if not is_s3_uri(uri):
        raise UsageError(f"not an S3 URI: {echo(uri)} (expected s3://bucket/prefix/)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise UsageError(f"S3 URI without a bucket: {echo(uri)}")
    return bucket, key


def s3_client(settings: SourcesSettings) -> Any:
    """A cached S3 client honouring ``aws_profile``, ``aws_region`` and ``s3_endpoint_url``."""
    key = (settings.aws_profile, settings.aws_region, settings.s3_endpoint_url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise UsageError("s3:// roots need boto3: pip install 'dbembed[aws]'") from exc
            session = boto3.Session(profile_name=settings.aws_profile, region_name=settings.aws_region)
            config = Config(retries={"mode": "standard", "max_attempts": max(3, settings.max_retries)})
            client = session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
            _clients[key] = client
        return client


def _error_code(exc: Exception) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def _match(patterns: list[str], name: str, rel: str) -> bool:
    """Same rules as local discovery: case-insensitive globs on the name; a pattern with a
    '/' matches the path relative to the root (or a folder above it)."""
    name, rel = name.casefold(), rel.casefold()
    for pat in (p.casefold() for p in patterns):
        if "/" in pat:
            pat = pat.lstrip("/")
            if fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel, pat + "/*"):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def _wanted(rel_key: str, settings: SourcesSettings) -> bool:
    """Include globs apply to the object; exclude globs also to every "folder" above it."""
    parts = rel_key.split("/")
    base = parts[-1]
    if not base or base.endswith(SKIP_SUFFIXES) or base.endswith(SIDECAR_SUFFIX):
        return False
    if settings.exclude:
        for i, part in enumerate(parts):
            if _match(settings.exclude, part, "/".join(parts[: i + 1])):
                return False
    return _match(settings.include or ["*"], base, rel_key)


def _check_header(client: Any, bucket: str, key: str, size: int) -> tuple[bool, str | None]:
    if size < len(SQLITE_MAGIC):
        return False, EMPTY if size == 0 else BAD_HEADER
    try:
        resp = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{len(SQLITE_MAGIC) - 1}")
        head = resp["Body"].read()
    except Exception as exc:  # noqa: BLE001 - one unreadable object is recorded, not fatal
        return False, f"cannot read S3 object: {_error_code(exc) or type(exc).__name__}"
    if head[: len(SQLITE_MAGIC)] != SQLITE_MAGIC:
        return False, BAD_HEADER
    return True, None


def _found(root: str, bucket: str, obj: dict[str, Any], header: tuple[bool, str | None]) -> FoundFile:
    return FoundFile(
        path=f"s3://{bucket}/{obj['Key']}",
        root=root,
        size=int(obj["Size"]),
        mtime=obj["LastModified"].timestamp(),
        header_ok=header[0],
        reason=header[1],
        etag=str(obj.get("ETag", "")).strip('"') or None,
    )


def discover_s3(root: str, settings: SourcesSettings) -> Iterator[FoundFile]:
    """Yield a ``FoundFile`` per candidate object under ``root`` (key order, as S3 lists)."""
    bucket, prefix = parse_s3_uri(root)
    client = s3_client(settings)
    if prefix and not prefix.endswith("/"):
        # An exact object is a single-file root (like a file path given locally).
        try:
            head = client.head_object(Bucket=bucket, Key=prefix)
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                _raise_root_error(root, exc)
        else:
            obj = {"Key": prefix, "Size": head["ContentLength"], "LastModified": head["LastModified"]}
            obj["ETag"] = head.get("ETag")
            yield _found(root, bucket, obj, _check_header(client, bucket, prefix, int(obj["Size"])))
            return
        prefix += "/"
    norm_root = f"s3://{bucket}/{prefix}"
    paginator = client.get_paginator("list_objects_v2")
    with ThreadPoolExecutor(max_workers=_HEADER_WORKERS, thread_name_prefix="s3-header") as pool:
        try:
            pages = paginator.paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
            )
            for page in pages:
                objs = [
                    o
                    for o in page.get("Contents", [])
                    if not o["Key"].endswith("/") and _wanted(o["Key"][len(prefix) :], settings)
                ]
                headers = pool.map(lambda o: _check_header(client, bucket, o["Key"], int(o["Size"])), objs)
                for obj, header in zip(objs, headers, strict=True):
                    yield _found(norm_root, bucket, obj, header)
        except DbembedError:
            raise
        except Exception as exc:  # noqa: BLE001
            _raise_root_error(root, exc)


def _raise_root_error(root: str, exc: Exception) -> None:
    code = _error_code(exc)
    if code in _ROOT_ERRORS:
        raise UsageError(f"cannot list {root}: {code}") from exc
    raise DbembedError(f"cannot list {root}: {code or type(exc).__name__}: {exc}") from exc


# --- cache -------------------------------------------------------------------------


def cache_dir(settings: SourcesSettings) -> Path:
    return settings.resolved_data_dir() / CACHE_SUBDIR


def _entry_name(bucket: str, key: str, etag: str | None) -> str:
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag or ''}".encode()).hexdigest()[:32]
    base = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in key.rsplit("/", 1)[-1])[-80:]
    return f"{digest}-{base}"


@contextlib.contextmanager
def _pin(path: Path) -> Iterator[None]:
    with _pinned_lock:
        _pinned[path] = _pinned.get(path, 0) + 1
    try:
        yield
    finally:
        with _pinned_lock:
            _pinned[path] -= 1
            if not _pinned[path]:
                del _pinned[path]


def _lock_shared(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_SH)


def evict(settings: SourcesSettings, limit: int | None = None) -> int:
    """Delete least recently used entries until the cache fits ``s3_cache_bytes``; return bytes freed.

    Entries pinned in this process or share-locked by another process are kept.
    """
    folder = cache_dir(settings)
    limit = settings.s3_cache_bytes if limit is None else limit
    if not folder.is_dir():
        return 0
    entries: list[tuple[float, int, Path]] = []
    now = time.time()
    for p in folder.iterdir():
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if p.name.startswith("."):
            if p.name.startswith(".part-") and now - st.st_mtime > _STALE_PART_S:
                p.unlink(missing_ok=True)  # left by a killed download
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    freed = 0
    for _, size, p in sorted(entries):
        if total <= limit:
            break
        with _pinned_lock:
            if p in _pinned:
                continue
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            total -= size
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # another process is reading it
            p.unlink(missing_ok=True)
            total -= size
            freed += size
            log.info("s3 cache: evicted %s (%d bytes)", p.name, size)
        finally:
            os.close(fd)
    return freed


def _download(
    client: Any, found: FoundFile | FileRef, bucket: str, key: str, folder: Path
) -> tuple[int, str]:
    """Download into a temp file in ``folder``; return (share-locked fd, temp path)."""
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=folder)
    try:
        _lock_shared(fd)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if found.etag:
            kwargs["IfMatch"] = f'"{found.etag}"'
        try:
            resp = client.get_object(**kwargs)
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise SourceError(
                    f"{found.path} changed since it was listed; the next run picks it up"
                ) from exc
            raise SourceError(f"cannot download {found.path}: {code or type(exc).__name__}: {exc}") from exc
        md5 = hashlib.md5(usedforsecurity=False)
        written = 0
        with os.fdopen(os.dup(fd), "wb") as out:
            for chunk in resp["Body"].iter_chunks(1 << 20):
                out.write(chunk)
                md5.update(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        _verify(found, resp, written, md5.hexdigest())
        return fd, tmp
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


def _verify(found: FoundFile | FileRef, resp: dict[str, Any], written: int, md5_hex: str) -> None:
    etag = str(resp.get("ETag", "")).strip('"')
    if found.etag and etag and etag != found.etag:
        raise SourceError(f"{found.path} changed while downloading (ETag {etag} != {found.etag})")
    expected = int(resp.get("ContentLength", written))
    if written != expected:
        raise SourceError(f"{found.path}: short download ({written} of {expected} bytes)")
    # ETag is the MD5 only for single-part objects without SSE-KMS / SSE-C.
    simple = len(etag) == 32 and "-" not in etag
    encrypted = str(resp.get("ServerSideEncryption", "")).startswith("aws:kms") or resp.get(
        "SSECustomerAlgorithm"
    )
    if simple and not encrypted and md5_hex != etag:
        raise SourceError(f"{found.path}: downloaded content does not match its ETag (corrupt transfer)")


@contextlib.contextmanager
def fetch(found: FoundFile | FileRef, settings: SourcesSettings) -> Iterator[Path]:
    """Yield a local copy of an S3 object (``FoundFile`` or ``FileRef``), from the cache or freshly downloaded."""
    bucket, key = parse_s3_uri(found.path)
    folder = cache_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _entry_name(bucket, key, found.etag)
    with _pin(path):
        fd: int | None = None
        try:
            try:
                fd = os.open(path, os.O_RDONLY)
                _lock_shared(fd)
                if os.fstat(fd).st_size != found.size or os.fstat(fd).st_nlink == 0:
                    os.close(fd)
                    fd = None
                else:
                    os.utime(path)  # mark as recently used (LRU by mtime)
                    log.debug("s3 cache hit: %s", found.path)
            except FileNotFoundError:
                fd = None
            if fd is None:
                started = time.monotonic()
                fd, tmp = _download(s3_client(settings), found, bucket, key, folder)
                os.replace(tmp, path)
                log.info(
                    "downloaded %s (%d bytes) in %.1fs", found.path, found.size, time.monotonic() - started
                )
                evict(settings)
            yield path
        finally:
            if fd is not None:
                os.close(fd)
    evict(settings)


def sidecar_key(found: FoundFile | FileRef) -> tuple[str, str]:
    bucket, key = parse_s3_uri(found.path)
    return bucket, key + SIDECAR_SUFFIX


def put_sidecar(found: FoundFile | FileRef, payload: dict[str, Any], settings: SourcesSettings) -> str:
    """Write the per-file metadata JSON next to the object; return its ``s3://`` URI."""
    bucket, key = sidecar_key(found)
    body = json.dumps(payload, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    try:
        s3_client(settings).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"cannot write s3://{bucket}/{key}: {_error_code(exc) or exc}") from exc
    return f"s3://{bucket}/{key}"
