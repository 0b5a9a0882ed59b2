"""Opening untrusted files and writing our own atomically.

Every read of a run folder, bank, dataset or export goes through here:

* :func:`user_path` -- a path a user typed: ``~user`` expanded (an unknown user is a clean error), no NUL,
  no component longer than the file system allows, bounded length;
* :func:`open_regular` / :func:`read_bytes` -- open with ``O_NONBLOCK`` (a FIFO can never block),
  ``fstat`` the opened descriptor (what is checked is what is read), refuse anything that is not a
  regular file (FIFO, device, socket, directory) and anything over the size cap of its kind
  (:data:`CAPS`), and refuse a file that changes size while being read;
* :func:`inside` -- a file name taken from a JSON, confined to the folder that JSON lives in (no
  absolute paths, no ``..``, and links must resolve inside that folder);
* :class:`RegionReader` -- positioned reads (``os.pread``) of fixed records from a large file
  instead of a memory map: a file that shrinks while in use gives a clean error, never ``SIGBUS``;
* :func:`atomic_write_bytes` / :func:`atomic_write_json` -- the one atomic writer (temporary file in
  the same folder, ``fsync``, ``os.replace``).
"""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import IO, Any, Callable, Optional, Sequence, Tuple, Union

from gandistill.io.errors import UnsafeFileError, show_path

PathLike = Union[str, "os.PathLike[str]"]

MiB = 2 ** 20
#: size caps per kind of file (bytes); anything larger is refused before a byte is read
CAPS = {
    "json": 4 * MiB,             # config.json, checkpoint.json, backbone.json, judge.json, teacher JSON
    "bank_header": 1 * MiB,      # a bank's JSON header (a real one is a few KB)
    "weights": 8 * 2 ** 30,      # a safetensors file read into memory
    "train_state": 8 * 2 ** 30,  # train_state.pt (optimizer moments: twice the weights)
    "image": 256 * MiB,          # one file of an image folder
    "labels": 64 * MiB,          # STL-10 label files
}
#: the longest path and path component accepted (Linux: PATH_MAX, NAME_MAX)
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, for a refusal message ('a FIFO / named pipe', ...)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO / named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def mib(n: int) -> str:
    """``n`` bytes as MiB for a message."""
    return f"{n / MiB:.1f} MiB"


def user_path(path: PathLike, what: str = "path") -> Path:
    """``path`` as a :class:`Path` with ``~`` expanded; :class:`UnsafeFileError` for an unknown ``~user``,
    a NUL byte, a component over 255 bytes or a path over 4096 characters (no ``OSError`` later)."""
    try:
        raw = os.fspath(path)
    except TypeError:
        raise UnsafeFileError(f"the {what} must be a path, got a {type(path).__name__}") from None
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    if "\0" in raw:
        raise UnsafeFileError(f"the {what} contains a NUL byte", path=raw)
    if len(raw) > MAX_PATH_CHARS:
        raise UnsafeFileError(f"the {what} is {len(raw)} characters long (more than {MAX_PATH_CHARS})", path=raw)
    try:
        p = Path(raw).expanduser()
    except RuntimeError:  # "~nosuchuser/..."
        raise UnsafeFileError(f"the {what} starts with an unknown user's home (~user)", path=raw) from None
    for part in p.parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            raise UnsafeFileError(f"the {what} has a component of {len(os.fsencode(part))} bytes "
                                  f"(more than {MAX_NAME_BYTES})", path=raw)
    return p


def _open_error(path: PathLike, what: str, e: OSError) -> UnsafeFileError:
    if e.errno == errno.ELOOP:
        return UnsafeFileError(f"the {what} is a symbolic link loop or a refused link", path=path)
    return UnsafeFileError(f"cannot open the {what} ({e.strerror or type(e).__name__})", path=path)


def open_regular(path: PathLike, what: str = "file", max_bytes: Optional[int] = None,
                 kind: str = "json") -> Tuple[int, os.stat_result]:
    """An open read-only descriptor of ``path`` and its ``fstat``, if it is a regular file within the cap.

    Never blocks (``O_NONBLOCK``); ``FileNotFoundError`` for a missing file (callers word it), every
    other problem an :class:`UnsafeFileError`. The caller closes the descriptor.
    """
    p = user_path(path, what)
    cap = CAPS[kind] if max_bytes is None else max_bytes
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"missing {what}", str(p)) from None
    except OSError as e:
        raise _open_error(p, what, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"the {what} is {file_kind(st.st_mode)}, not a regular file; refusing to read it", path=p)
        if st.st_size > cap:
            raise UnsafeFileError(f"the {what} is {mib(st.st_size)}, over the {mib(cap)} limit; refusing to read it",
                                  path=p)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_append(path: PathLike, what: str = "log file") -> IO[str]:
    """``path`` opened for appending text (created if missing), if it is a regular file: a FIFO or device
    planted under a log's name in a run folder is refused at once instead of blocking the run."""
    p = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)   # (os.open: never inherited)
    try:
        fd = os.open(p, flags, 0o644)
    except OSError as e:   # a FIFO without a reader: ENXIO, at once
        raise _open_error(p, what, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"the {what} is {file_kind(st.st_mode)}, not a regular file; refusing to "
                                  "write to it", path=p)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "a", buffering=1)
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: PathLike, what: str = "file", max_bytes: Optional[int] = None, kind: str = "json") -> bytes:
    """The whole content of a regular file under its cap (see :func:`open_regular`); a file that grows or
    shrinks while being read is refused."""
    fd, st = open_regular(path, what, max_bytes, kind)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(st.st_size + 1)
    except OSError as e:
        raise UnsafeFileError(f"cannot read the {what} ({e.strerror or type(e).__name__})", path=path) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) != st.st_size:
        raise UnsafeFileError(f"the {what} changed size while being read; refusing", path=path)
    return data


def is_regular(path: PathLike) -> bool:
    """True when ``path`` (after links) is a regular file; never opens it (a FIFO cannot block)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def inside(folder: PathLike, name: Any, what: str = "file", where: Optional[PathLike] = None) -> Path:
    """``folder / name`` for a file ``name`` read from a JSON (``where``): a non-empty relative path without
    ``..``, resolving (links followed) to a place inside ``folder``; else :class:`UnsafeFileError`."""
    src = where if where is not None else folder
    if not isinstance(name, str) or not name or "\0" in name or len(name) > MAX_NAME_BYTES:
        raise UnsafeFileError(f"the {what} must be a file name inside the folder, got a bad value", path=src)
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or name.startswith("~"):
        raise UnsafeFileError(f"the {what} {show_path(name, 80)!s} must be a relative name inside the folder "
                              "(absolute paths and '..' are refused)", path=src)
    root = Path(folder).resolve()
    target = (Path(folder) / rel).resolve()
    if target != root and root not in target.parents:
        raise UnsafeFileError(f"the {what} {show_path(name, 80)} resolves outside the folder {show_path(root, 80)}; "
                              "refusing to follow it", path=src)
    return target


class RegionReader:
    """Positioned reads of one regular file (instead of ``numpy.memmap``).

    ``read(offset, size)`` returns exactly ``size`` bytes or raises ``error_type`` (a file truncated
    while in use is a clean error, never ``SIGBUS``). The file is opened once without blocking.
    """

    def __init__(self, path: PathLike, what: str = "file", error_type: type = UnsafeFileError) -> None:
        self.path, self.what, self.error_type = Path(path), what, error_type
        self.fd, st = open_regular(path, what, max_bytes=2 ** 62)
        self.size = st.st_size

    def read(self, offset: int, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            data = os.pread(self.fd, size, offset)
        except OSError as e:
            raise self.error_type(f"cannot read the {self.what} ({e.strerror})", path=self.path) from None
        if len(data) != size:
            raise self.error_type(f"the {self.what} is shorter than expected (truncated while in use?): wanted "
                                  f"{size} bytes at offset {offset}, got {len(data)}", path=self.path)
        return data

    def read_rows(self, base: int, row: int, rows: Sequence[int]) -> bytes:
        """The ``row``-byte records number ``rows`` of an array starting at ``base``, concatenated (one
        positioned read each; a short read anywhere makes the total short, which is refused)."""
        pread, fd = os.pread, self.fd
        try:
            data = b"".join([pread(fd, row, base + i * row) for i in rows])
        except OSError as e:
            raise self.error_type(f"cannot read the {self.what} ({e.strerror})", path=self.path) from None
        if len(data) != row * len(rows):
            raise self.error_type(f"the {self.what} is shorter than expected (truncated while in use?)",
                                  path=self.path)
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # pragma: no cover - finaliser
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:  # DataLoader workers re-open the file
        return {"path": self.path, "what": self.what, "error_type": self.error_type}

    def __setstate__(self, s: dict) -> None:
        self.__init__(s["path"], s["what"], s["error_type"])


# ------------------------------------------------------------------------------------------------ writing


def fsync_path(folder: PathLike) -> None:
    """fsync a file or folder by path, best effort (a failure to open or sync is ignored)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` a temporary next to ``path``, fsync it, then rename it over ``path`` (the temporary is
    removed if anything fails)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: PathLike, obj: Any, indent: Optional[int] = 2, default: Optional[Callable] = str,
                      mkdir: bool = False) -> None:
    """Write ``obj`` as JSON (trailing newline) to ``path`` atomically; ``mkdir`` creates the folder."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=indent, default=default, allow_nan=True) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


__all__ = ["CAPS", "RegionReader", "atomic_write", "atomic_write_bytes", "atomic_write_json", "inside", "is_regular",
           "open_regular", "read_bytes", "user_path"]
