"""Crash-safe file output and record (de)serialisation for the sweep runner.

Every file the runner writes goes through :func:`atomic_write_text`: the text
is written to a hidden temporary file *in the destination directory*
(``.<name>.<random>.tmp``), flushed and ``fsync``-ed, then moved over the
destination with ``os.replace`` (atomic on POSIX and Windows). A reader
therefore sees either the old complete file or the new complete file, never a
partial one; a process killed mid-write leaves at most a stray ``*.tmp`` file,
which no reader looks at.

Records are flat dicts of ``str``/``int``/``float``/``bool``. On disk they are
strict JSON (``allow_nan=False``): a non-finite float (NaN, ±inf) is stored as
``null`` (and as an empty field in CSV); :func:`nulls_to_nan` turns the nulls
back into ``float("nan")`` for plotting. Callers are expected to count and
report those values (the runner prints a warning), so they never vanish
silently.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


# ----------------------------------------------------------------- atomic writes
def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; create parent directories.

    Temp file in the same directory, flush + fsync, ``os.replace``, then a
    best-effort fsync of the directory so the rename itself is durable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; use the usual umask mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps_json(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON (no NaN/inf literals; raises ``ValueError`` if any remain)."""
    return json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON, atomically."""
    return atomic_write_text(path, dumps_json(obj, indent=1) + "\n")


def canonical_json(obj: Any) -> str:
    """Strict JSON with sorted keys and no whitespace: equal data, equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False)


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of :func:`canonical_json` (a content hash of JSON data)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def read_json_or_none(path: str | os.PathLike) -> Any:
    """Parsed JSON content of ``path``, or ``None`` if it is missing or corrupt
    (truncated, not UTF-8, not JSON)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
        return None


# ---------------------------------------------------------------------- records
def to_python(value: Any) -> Any:
    """A Python ``str``/``int``/``float``/``bool``/``None`` from a Python, NumPy
    or JAX scalar (0-d arrays included). Raises ``TypeError`` for anything else
    (arrays with elements, lists, dicts, ...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # np.ndarray, jax.Array
        if tuple(value.shape) == ():
            return np.asarray(value).item()
        raise TypeError(f"expected a scalar, got an array of shape {tuple(value.shape)}")
    raise TypeError(f"expected a str/int/float/bool scalar, got {type(value).__name__}")


def clean_record(record: Any) -> dict[str, Any]:
    """Validate a flat record and convert it for strict JSON.

    Keys must be strings; values become Python scalars (:func:`to_python`);
    non-finite floats become ``None`` (JSON ``null``). Raises ``TypeError``
    naming the offending key.
    """
    if not isinstance(record, dict):
        raise TypeError(f"a record must be a dict, got {type(record).__name__}")
    out = {}
    for key, value in record.items():
        if not isinstance(key, str):
            raise TypeError(f"record keys must be str, got {key!r}")
        try:
            value = to_python(value)
        except TypeError as err:
            raise TypeError(f"record field {key!r}: {err}") from None
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def count_nulls(records: Iterable[dict]) -> dict[str, int]:
    """Number of ``None`` values per key (the stored NaN/inf values)."""
    counts: dict[str, int] = {}
    for record in records:
        for key, value in record.items():
            if value is None:
                counts[key] = counts.get(key, 0) + 1
    return counts


def nulls_to_nan(records: Iterable[dict]) -> list[dict]:
    """Copies of ``records`` with ``None`` replaced by ``float("nan")``."""
    return [{k: (math.nan if v is None else v) for k, v in r.items()} for r in records]


def record_columns(records: Iterable[dict], leading: Iterable[str] = ()) -> list[str]:
    """``leading`` then the union of the records' keys in first-seen order."""
    columns = list(dict.fromkeys(leading))
    seen = set(columns)
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return columns


def write_records_csv(
    path: str | os.PathLike, records: list[dict], leading: Iterable[str] = ()
) -> Path:
    """Tidy CSV, one row per record, atomically. Columns: ``leading`` then the
    union of keys; a missing or ``None`` value is an empty field; floats keep
    full precision (``repr``)."""
    columns = record_columns(records, leading)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return atomic_write_text(path, buf.getvalue())


def write_records_jsonl(path: str | os.PathLike, records: list[dict]) -> Path:
    """One strict-JSON object per line, atomically (``None`` is ``null``)."""
    return atomic_write_text(path, "".join(dumps_json(r) + "\n" for r in records))


def read_records_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records written by :func:`write_records_jsonl` (nulls kept as ``None``)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ------------------------------------------------------------- output directory
def check_writable(directory: str | os.PathLike) -> Path:
    """Create ``directory`` (with parents) and prove it writable by writing and
    removing a probe file; raise ``OSError`` naming the directory otherwise."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(err.errno, f"output directory {directory} is not writable: "
                      f"{err.strerror or err}") from None
    return directory


class LockBusy(RuntimeError):
    """The lock is held by another process and the wait timed out."""


class DirLock:
    """An advisory ``fcntl.flock`` on a lock file (shared or exclusive).

    The kernel releases it when the process exits or crashes (the file
    descriptor closes), so a killed run never leaves a stale lock; the lock file
    itself stays. ``wait_s=None`` waits forever, ``0`` refuses at once; while
    waiting, one message naming the holder (pid and command, written into the
    file by an exclusive holder) goes to stderr.
    """

    def __init__(self, path: str | os.PathLike, *, shared: bool = False,
                 wait_s: float | None = None, poll_s: float = 0.2):
        self.path, self.shared, self.wait_s, self.poll_s = Path(path), shared, wait_s, poll_s
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"

    def acquire(self) -> DirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
            waited = time.monotonic() - start
            if self.wait_s is not None and waited >= self.wait_s:
                os.close(fd)
                raise LockBusy(f"{self.path.parent} is in use by {self.holder()} "
                               f"(lock file {self.path.name}); waited {waited:.0f} s")
            if not told:
                print(f"note: {self.path.parent} is in use by {self.holder()}; waiting for it "
                      "to finish", file=sys.stderr, flush=True)
                told = True
            time.sleep(self.poll_s)
        if not self.shared:  # only an exclusive holder may rewrite the file
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if not self.shared:
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
