"""The lake: one root URI (a local folder or `s3://bucket/prefix`) reached through `pyarrow.fs`.

Why atomic writes: readers (the next task, a rerun, the inference DAG) must never see half a partition.
Single files are written under a temporary name and renamed (local) or PUT in one request (S3, where an
object appears whole or not at all). Multi-file outputs are committed by a `_manifest.json` written last;
`read_committed` reads only what a manifest lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from conf_profile.config import S3Settings, Settings
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout, RunLayout
from conf_profile.secrets import redact_url

MANIFEST = "_manifest.json"


@dataclass
class Lake:
    """A filesystem plus a root path inside it. All paths given to methods are relative to the root."""

    uri: str
    fs: pafs.FileSystem
    root: str
    s3: S3Settings | None = None
    # Content hashes of the files this process wrote (rel path -> hex), so a commit can record them without
    # reading anything back (fingerprints of stage outputs; see `fingerprint`).
    written: dict[str, str] = field(default_factory=dict, repr=False)

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings, create: bool | None = None) -> Lake:
        """`create` None: create only the embedded default folder (<data_dir>/lake); a named lake must exist."""
        return cls.open(settings.lake_uri, settings.s3, create=settings.lake is None if create is None else create)

    @classmethod
    def open(cls, uri: str, s3: S3Settings | None = None, create: bool = True) -> Lake:
        """Open the lake and check that it is reachable (`check_reachable`); `create` makes a missing local
        folder or bucket instead of refusing it."""
        parsed = urlparse(uri)
        if parsed.scheme in ("s3", "s3a", "minio"):
            s3 = s3 or S3Settings()
            fs = s3_filesystem(s3)
            root = (parsed.netloc + parsed.path).rstrip("/")
            if not parsed.netloc:
                raise LakeError(f"Lake URI {uri!r} names no bucket.", "Write it as s3://bucket/prefix.")
            lake = cls(uri=uri, fs=fs, root=root, s3=s3)
        elif parsed.scheme in ("", "file"):
            path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve()
            lake = cls(uri=str(path), fs=pafs.LocalFileSystem(), root=str(path))
        else:
            raise LakeError(
                f"Unsupported lake URI scheme {parsed.scheme!r} in {uri!r}.",
                "Use a local folder path or s3://bucket/prefix (MinIO via CONF_PROFILE_S3__ENDPOINT_URL).",
            )
        check_reachable(lake, create)
        return lake

    @property
    def is_s3(self) -> bool:
        return isinstance(self.fs, pafs.S3FileSystem)

    # ---- paths --------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *[p.strip("/") for p in parts if p])

    def uri_of(self, *parts: str) -> str:
        """A full URI for lineage (MLflow inputs, logs)."""
        rel = posixpath.join(*[p.strip("/") for p in parts if p]) if parts else ""
        if self.is_s3:
            return f"s3://{posixpath.join(self.root, rel)}"
        return posixpath.join(self.root, rel)

    # Paths come from the layout (layout.py owns them); these two are kept for the raw-partition helpers below.
    raw_dir = staticmethod(LakeLayout.raw_dir)
    raw_partition = staticmethod(LakeLayout.raw_partition)

    @staticmethod
    def run_dir(interval: Interval, *parts: str) -> str:
        """A path under runs/<key>/ (tests and scripts); library code names its paths through `RunLayout`."""
        return RunLayout(interval).path(*parts)

    # ---- basic ops ----------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        info = self.fs.get_file_info(self.path(rel))
        return info.type != pafs.FileType.NotFound

    def listdir(self, rel: str) -> list[str]:
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(sel))

    def list_files(self, rel: str, suffix: str = "") -> list[str]:
        """Relative paths of all files below `rel` (recursive), sorted."""
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=True)
        out = []
        for info in self.fs.get_file_info(sel):
            if info.type == pafs.FileType.File and info.path.endswith(suffix):
                out.append(posixpath.relpath(info.path, self.root))
        return sorted(out)

    def delete(self, rel: str) -> None:
        p = self.path(rel)
        info = self.fs.get_file_info(p)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(p)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(p)

    def _mkdir_parent(self, full: str) -> None:
        if not self.is_s3:
            self.fs.create_dir(posixpath.dirname(full), recursive=True)

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Atomic: local temp file + rename; S3 single PUT."""
        full = self.path(rel)
        self.written[rel.strip("/")] = content_hash(data)
        self._mkdir_parent(full)
        if self.is_s3:
            with self.fs.open_output_stream(full) as f:
                f.write(data)
        else:
            tmp = posixpath.join(posixpath.dirname(full), f".tmp-{uuid.uuid4().hex}-{posixpath.basename(full)}")
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, full)
        return rel

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()
        except FileNotFoundError:
            raise LakeError(f"{self.uri_of(rel)} does not exist.", "Run the stage that writes it first.") from None

    def write_json(self, rel: str, obj: Any) -> str:
        return self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_table(self, rel: str, table: pa.Table, compression: str = "zstd") -> str:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression=compression)
        return self.write_bytes(rel, buf.getvalue())

    def read_table(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        if not self.exists(rel):
            raise LakeError(f"{self.uri_of(rel)} does not exist.", "Run the stage that writes it first.")
        return pq.read_table(self.path(rel), filesystem=self.fs, columns=columns)

    # ---- committed multi-file outputs ---------------------------------------------------------------
    def commit(self, rel_dir: str, files: Iterable[str], meta: dict | None = None) -> str:
        """Write the manifest that makes `files` (relative to `rel_dir`) the content of `rel_dir`, then
        delete files in the folder that the manifest does not list (leftovers of an older attempt)."""
        files = sorted(files)
        hashes = {f: self.file_hash(posixpath.join(rel_dir, f)) for f in files}
        self.write_json(posixpath.join(rel_dir, MANIFEST), {"files": files, "hashes": hashes, "meta": meta or {}})
        keep = set(files) | {MANIFEST}
        for f in self.list_files(rel_dir):
            name = posixpath.relpath(f, rel_dir)
            if name not in keep and not posixpath.basename(name).startswith(".tmp-"):
                self.delete(f)
        return rel_dir

    def file_hash(self, rel: str) -> str:
        """Content hash of one file: from the write when this process wrote it, else by reading it."""
        rel = rel.strip("/")
        return self.written.get(rel) or content_hash(self.read_bytes(rel))

    def fingerprint(self, rel: str) -> str:
        """Identity of a committed folder's content (its files and their hashes) or of a single file. Cheap:
        a folder's manifest records the hashes (older manifests without them are hashed by content once)."""
        if self.is_committed(rel):
            m = self.manifest(rel)
            hashes = m.get("hashes") or {f: self.file_hash(posixpath.join(rel, f)) for f in m["files"]}
            return content_hash(json.dumps([[f, hashes.get(f)] for f in sorted(m["files"])]).encode())
        info = self.fs.get_file_info(self.path(rel))
        if info.type == pafs.FileType.NotFound:
            raise LakeError(f"{self.uri_of(rel)} does not exist.", "Run the stage that writes it first.")
        if info.type == pafs.FileType.File:
            return self.file_hash(rel)
        parts = [[c, self.fingerprint(posixpath.join(rel, c))] for c in self.listdir(rel)
                 if not c.startswith((".tmp-", "."))]  # a folder of committed folders and files
        return content_hash(json.dumps(parts).encode())

    def is_committed(self, rel_dir: str) -> bool:
        return self.exists(posixpath.join(rel_dir, MANIFEST))

    def manifest(self, rel_dir: str) -> dict:
        if not self.is_committed(rel_dir):
            raise LakeError(
                f"{self.uri_of(rel_dir)} has no {MANIFEST}: it was never written or a write did not finish.",
                "Rerun the stage that writes it.",
            )
        return self.read_json(posixpath.join(rel_dir, MANIFEST))

    def write_committed_table(self, rel_dir: str, table: pa.Table, meta: dict | None = None,
                              name: str = "part-0.parquet") -> str:
        """One-file committed output (the common case for run stages)."""
        self.write_table(posixpath.join(rel_dir, name), table)
        return self.commit(rel_dir, [name], meta)

    def read_committed(self, rel_dir: str, columns: list[str] | None = None) -> pa.Table:
        files = self.manifest(rel_dir)["files"]
        paths = [self.path(rel_dir, f) for f in files if f.endswith(".parquet")]
        if not paths:
            return pa.table({})
        return ds.dataset(paths, filesystem=self.fs, format="parquet").to_table(columns=columns)

    # ---- folders of files (model directories) ------------------------------------------------------
    def upload_dir(self, local_dir: str | Path, rel_dir: str, meta: dict | None = None) -> str:
        """Copy a local folder (e.g. a saved HF model) into the lake and commit it with a manifest."""
        local_dir = Path(local_dir)
        files = [p for p in sorted(local_dir.rglob("*")) if p.is_file()]
        names = [p.relative_to(local_dir).as_posix() for p in files]
        for p, name in zip(files, names, strict=True):
            self.write_bytes(posixpath.join(rel_dir, name), p.read_bytes())
        return self.commit(rel_dir, names, meta)

    def local_dir(self, rel_dir: str, cache: str | Path | None = None) -> Path:
        """A local folder holding a committed lake folder: the folder itself for a local lake, else a
        download into `cache` (default: a temp dir)."""
        files = self.manifest(rel_dir)["files"]
        if not self.is_s3:
            return Path(self.path(rel_dir))
        import tempfile

        target = Path(cache or tempfile.mkdtemp(prefix="conf-profile-"))
        for name in files:
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self.read_bytes(posixpath.join(rel_dir, name)))
        return target

    # ---- hive partitions ----------------------------------------------------------------------------
    def write_partition(self, table_name: str, day: Any, table: pa.Table, part: str = "part-0.parquet") -> str:
        """One day's file of a raw table. The object appears atomically; rewriting replaces it."""
        rel = posixpath.join(self.raw_partition(table_name, day), part)
        return self.write_table(rel, table)

    def dataset(self, rel_dir: str, schema: pa.Schema | None = None) -> ds.Dataset:
        """A hive-partitioned dataset (partition column `dt` as a string); temp files are ignored."""
        return ds.dataset(
            self.path(rel_dir),
            filesystem=self.fs,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive"),
            schema=schema,
            exclude_invalid_files=False,
            ignore_prefixes=[".", "_"],
        )

    def partition_days(self, table_name: str) -> list[str]:
        return [d.split("=", 1)[1] for d in self.listdir(self.raw_dir(table_name)) if d.startswith("dt=")]


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def s3_filesystem(s3: S3Settings) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {"region": s3.region}
    if s3.access_key and s3.secret_key:
        kwargs["access_key"] = s3.access_key.get_secret_value()
        kwargs["secret_key"] = s3.secret_key.get_secret_value()
    if s3.endpoint_url:
        parsed = urlparse(s3.endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "http"
        kwargs["allow_bucket_creation"] = True
    # Bounded: an endpoint that is down fails within seconds instead of the SDK's minutes of retries.
    kwargs["connect_timeout"] = s3.connect_timeout_s
    kwargs["request_timeout"] = s3.request_timeout_s
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=s3.max_attempts)
    return pafs.S3FileSystem(**kwargs)


def check_reachable(lake: Lake, create: bool = False) -> None:
    """Fail early, in one paragraph naming the setting to fix, when the lake cannot be used: an object store
    that is down or refuses the credentials, a bucket or local folder that does not exist (created instead
    when `create`), a local path that cannot be a folder. One cheap request; the low-level error is wrapped."""
    if not lake.is_s3:
        path = Path(lake.root)
        if path.is_dir():
            return
        if path.exists():
            raise LakeError(f"The lake path {path} is a file, not a folder.",
                            "Point --lake (or CONF_PROFILE_LAKE / the `lake` setting) at a folder.")
        if not create:
            raise LakeError(f"The lake folder {path} does not exist.",
                            "Check --lake (or CONF_PROFILE_LAKE / the `lake` setting), or write data there first "
                            f"with `conf-profile simulate --lake {path}`.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(f"Cannot create the lake folder {path}: {exc.strerror or exc}.",
                            "Point --lake (or CONF_PROFILE_LAKE / the `lake` setting) at a writable folder.") from None
        return
    s3 = lake.s3 or S3Settings()
    bucket = lake.root.split("/", 1)[0]
    where = s3.endpoint_url or "AWS S3"
    try:
        info = lake.fs.get_file_info(bucket)
        if info.type == pafs.FileType.NotFound and create:
            lake.fs.create_dir(bucket)
            return
    except OSError as exc:
        text = str(exc)
        if "NETWORK_CONNECTION" in text or "curlCode" in text or "Timeout" in text:
            raise LakeError(f"The object store at {redact_url(where)} cannot be reached ({_aws_reason(text)}).",
                            "Check CONF_PROFILE_S3__ENDPOINT_URL (s3.endpoint_url; AWS_ENDPOINT_URL) and that "
                            "the store is running.") from None
        if s3.access_key is None or s3.secret_key is None:
            raise LakeError(f"The object store at {redact_url(where)} refused the request and no credentials "
                            f"are set ({_aws_reason(text)}).",
                            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or CONF_PROFILE_S3__ACCESS_KEY / "
                            "CONF_PROFILE_S3__SECRET_KEY) in the environment.") from None
        if any(w in text for w in ("ACCESS_DENIED", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")):
            raise LakeError(f"The object store at {redact_url(where)} refused the credentials for bucket "
                            f"{bucket!r} ({_aws_reason(text)}).",
                            "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or CONF_PROFILE_S3__ACCESS_KEY / "
                            "CONF_PROFILE_S3__SECRET_KEY) and the bucket policy.") from None
        raise LakeError(f"The object store at {redact_url(where)} failed on bucket {bucket!r} "
                        f"({_aws_reason(text)}).",
                        "Check CONF_PROFILE_S3__ENDPOINT_URL, the credentials and the bucket.") from None
    if info.type == pafs.FileType.NotFound:
        raise LakeError(f"The bucket {bucket!r} does not exist at {redact_url(where)}.",
                        f"Create it (e.g. `mc mb <alias>/{bucket}`), fix the bucket in --lake (CONF_PROFILE_LAKE), "
                        f"or write data with `conf-profile simulate --lake {lake.uri}`, which creates it.")


def _aws_reason(text: str) -> str:
    """The useful part of a pyarrow/AWS SDK error: 'AWS Error X during Op: detail' without the preamble."""
    i = text.find("AWS Error")
    return (text[i:] if i >= 0 else text).strip().rstrip(".")[:300]


def ensure_bucket(uri: str, s3: S3Settings) -> bool:
    """Create the lake's bucket with the `minio` SDK if missing (works against MinIO, S3 and moto).
    Returns True when it was created."""

    bucket = urlparse(uri).netloc
    client = _minio_client(s3)
    if client.bucket_exists(bucket):
        return False
    client.make_bucket(bucket)
    return True


def health_check(uri: str, s3: S3Settings) -> dict:
    """Reachability of the object store and the bucket, as a small dict for `conf-profile doctor`."""
    bucket = urlparse(uri).netloc
    try:
        ok = _minio_client(s3).bucket_exists(bucket)
    except Exception as exc:  # noqa: BLE001 - any transport error is a health failure, reported as text
        return {"reachable": False, "bucket": bucket, "error": str(exc)}
    return {"reachable": True, "bucket": bucket, "bucket_exists": ok}


def _minio_client(s3: S3Settings):
    from minio import Minio

    if not s3.endpoint_url:
        endpoint, secure = "s3.amazonaws.com", True
    else:
        parsed = urlparse(s3.endpoint_url)
        endpoint, secure = parsed.netloc, parsed.scheme == "https"
    return Minio(
        endpoint,
        access_key=s3.access_key.get_secret_value() if s3.access_key else None,
        secret_key=s3.secret_key.get_secret_value() if s3.secret_key else None,
        secure=secure,
        region=s3.region,
    )
