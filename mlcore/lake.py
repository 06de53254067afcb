"""The lake: one interface over a local folder and an S3 bucket (through boto3).

Keys are POSIX-style paths relative to the lake root (``raw/pozytywka/ds=2024-01-31/users.jsonl``).
Every write is atomic for readers: a local file is written beside its target and renamed into
place; an S3 object appears whole on PUT. Tasks hand each other keys, never data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlcore.config import Settings

# mkstemp creates owner-only files; lake files are read by other users (a Data Docs web server).
_FILE_MODE = 0o644


class LakeError(RuntimeError):
    """A lake operation failed (missing key, unreachable store)."""


# ---- layout: the contract between tasks -------------------------------------------------------
def _ds(ds: dt.date | str) -> str:
    return ds.isoformat() if isinstance(ds, dt.date) else str(ds)


def raw_prefix(source: str, ds: dt.date | str) -> str:
    return f"raw/{source}/ds={_ds(ds)}"


def features_prefix(pipeline: str, ds: dt.date | str) -> str:
    return f"features/{pipeline}/ds={_ds(ds)}"


def predictions_prefix(pipeline: str, ds: dt.date | str) -> str:
    return f"predictions/{pipeline}/ds={_ds(ds)}"


def models_prefix(pipeline: str, version: str | None = None) -> str:
    return f"models/{pipeline}" + (f"/{version}" if version else "")


def outputs_prefix(table: str, ds: dt.date | str) -> str:
    return f"outputs/{table}/ds={_ds(ds)}"


def reports_prefix(*parts: str) -> str:
    return "/".join(("reports", *parts))


class Lake:
    """Operations every lake offers. ``uri`` names the root (a folder or ``s3://bucket/prefix``)."""

    uri: str

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Keys of the files under ``prefix`` (recursively), sorted."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def put_file(self, local: str | Path, key: str) -> None:
        raise NotImplementedError

    def get_file(self, key: str, local: str | Path) -> None:
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        raise NotImplementedError

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}"

    # -- built from the primitives above ------------------------------------------------------
    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    @contextlib.contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:
        """A local folder holding the files under ``prefix`` (a temporary download for S3)."""
        with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
            for key in self.list(prefix):
                self.get_file(key, Path(tmp) / key[len(prefix) :].lstrip("/"))
            yield Path(tmp)

    def replace_prefix(self, prefix: str, local: str | Path) -> list[str]:
        """Make ``prefix`` hold exactly the files of the local folder ``local``.

        New files are written first and stale ones removed last, so a reader never sees the
        partition empty; a failure part-way leaves the previous files in place.
        """
        local = Path(local)
        keys = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            self.put_file(path, key)
            keys.append(key)
        for stale in set(self.list(prefix)) - set(keys):
            self.delete_key(stale)
        return keys

    def delete_key(self, key: str) -> None:
        raise NotImplementedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class LocalLake(Lake):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if p != self.root and self.root not in p.parents:
            raise LakeError(f"key {key!r} escapes the lake root")
        return p

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise LakeError(f"not in the lake: {self.url(key)}") from exc

    def _temporary(self, target: Path) -> tuple[int, str]:
        """A new temporary file beside ``target``, after removing the ones killed writers left.

        Its name carries the writer's PID and host: a process killed between the write and the
        rename (SIGKILL, OOM) leaves ``.tmp-<pid>@<host>.*`` behind, which readers never list
        and the next write into the folder removes once that process is gone. Only this host's
        are judged: a trainer container sharing the folder has PIDs of its own.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        for orphan in target.parent.glob(".tmp-*@*"):
            pid, _, rest = orphan.name[len(".tmp-") :].partition("@")
            if rest.rsplit(".", 1)[0] == host and pid.isdigit() and not _alive(int(pid)):
                orphan.unlink(missing_ok=True)
        return tempfile.mkstemp(prefix=f".tmp-{os.getpid()}@{host}.", dir=target.parent)

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        fd, tmp = self._temporary(target)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)

    def put_file(self, local: str | Path, key: str) -> None:
        target = self.path(key)
        if Path(local).resolve() == target:
            return
        fd, tmp = self._temporary(target)
        os.close(fd)
        shutil.copyfile(local, tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)

    def get_file(self, key: str, local: str | Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self.path(key), local)
        except FileNotFoundError as exc:
            raise LakeError(f"not in the lake: {self.url(key)}") from exc

    def delete_key(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        p = self.path(prefix)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:
        # A local lake is already local: read in place, no copy.
        yield self.path(prefix)


class S3Lake(Lake):
    def __init__(self, uri: str, client):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise LakeError(f"no bucket in lake URI {uri!r}")
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client
        self.uri = uri.rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """The store's errors as one LakeError line: an unreachable endpoint, a missing bucket,
        a refused request, a server that answers 500 or too late, a body cut short (no
        credentials in the message: botocore never puts them there)."""
        from boto3.exceptions import Boto3Error, RetriesExceededError
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError as URLLib3Error

        try:
            yield
        except (
            ClientError,
            BotoCoreError,
            Boto3Error,
            URLLib3Error,
            ConnectionError,
            TimeoutError,
        ) as exc:
            # BotoCoreError: EndpointConnectionError, ConnectionClosedError, ReadTimeoutError,
            # ResponseStreamingError, no credentials; Boto3Error: the transfer manager's
            # S3UploadFailedError (a ClientError's text) and RetriesExceededError (a download
            # that failed every attempt: its text is only "Max Retries Exceeded", the reason
            # is its last error). urllib3's and the socket's errors, which botocore wraps, are
            # caught too, so that none reaches the user as a traceback.
            if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
                exc = exc.last_exception
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else ""
            if code == "NoSuchBucket" or "(NoSuchBucket)" in str(exc):
                raise LakeError(
                    f"cannot {action} {self.url(key)}: the bucket {self.bucket!r} does not exist"
                ) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LakeError(f"cannot {action} {self.url(key)}: {first}") from None

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors("reach", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/")
        keys = []
        with self._errors("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    k = obj["Key"]
                    if k == full or k.startswith(full + "/"):
                        keys.append(self._rel(k))
        return sorted(keys)

    def _missing(self, exc, key: str) -> LakeError | None:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return LakeError(f"not in the lake: {self.url(key)}")
        return None

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import (
            ClientError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        attempt = 0
        with self._errors("read", key):
            while True:
                attempt += 1
                try:
                    obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                except ClientError as exc:
                    raise self._missing(exc, key) or exc from None
                try:
                    return obj["Body"].read()
                except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError):
                    # botocore retries a request that got no answer, not a body that broke
                    # off; the transfer manager (get_file) retries those, and so does this.
                    if attempt >= S3_MAX_ATTEMPTS:
                        raise

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, local: str | Path, key: str) -> None:
        with self._errors("write", key):
            self.client.upload_file(
                str(local), self.bucket, self._key(key), Config=_transfer_config()
            )

    def get_file(self, key: str, local: str | Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        from botocore.exceptions import ClientError

        with self._errors("read", key):
            try:
                self.client.download_file(
                    self.bucket, self._key(key), str(local), Config=_transfer_config()
                )
            except ClientError as exc:
                raise self._missing(exc, key) or exc from None

    def delete_key(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete_key(key)


# Bounded waits on the object store. botocore's defaults are 60 s to connect and 60 s for each
# read of the socket, per attempt, and the transfer manager tries a download 5 times over: a
# server that stopped answering held a step for minutes on one request. 10 s to connect (a
# store on the network answers a TCP handshake in milliseconds) and 30 s of silence between
# two reads (the AWS SDK for Java's socket timeout; S3 and MinIO answer in well under a
# second, and a large upload or download keeps the socket busy, so it does not count).
S3_CONNECT_TIMEOUT = 10.0
S3_READ_TIMEOUT = 30.0
# Attempts per request, in botocore's "standard" retry mode: a 500, 502, 503 or 504, a
# throttling answer, a refused or dropped connection and a timeout are retried after a short
# jittered exponential backoff. Also the attempts at a body that breaks off mid-way, which
# botocore does not retry (read_bytes and the transfer manager do). A request to a server that
# does not answer fails after about S3_MAX_ATTEMPTS * (S3_CONNECT_TIMEOUT + S3_READ_TIMEOUT).
S3_MAX_ATTEMPTS = 3


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(num_download_attempts=S3_MAX_ATTEMPTS)


def s3_client(settings: Settings):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        config=Config(
            connect_timeout=S3_CONNECT_TIMEOUT,
            read_timeout=S3_READ_TIMEOUT,
            retries={"mode": "standard", "total_max_attempts": S3_MAX_ATTEMPTS},
        ),
    )


def open_lake(settings: Settings) -> Lake:
    """The lake named by ``settings.lake``: a local folder, or S3 for ``s3://`` URIs."""
    if settings.lake_is_s3:
        return S3Lake(settings.lake, s3_client(settings))
    return LocalLake(settings.lake)
