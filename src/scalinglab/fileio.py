"""Writing files safely: atomic writes (temp file, then rename), folders built beside their destination and
renamed into place (`staged_dir`), output paths checked before work starts (`check_output`), OS errors as one line.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; stored results should not be
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- OS errors as one line ----

_OS_HINTS = {
    errno.ENOSPC: ("no space left on the device", "free some space or write to another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write to another disk"),
    errno.EROFS: ("read-only file system", "write to a writable folder"),
    errno.EACCES: ("permission denied", "check the permissions or write to a folder of your own"),
    errno.EPERM: ("operation not permitted", "check the permissions or write to a folder of your own"),
    errno.EEXIST: ("already exists", "choose a new path or delete it first"),
    errno.EISDIR: ("is a folder, not a file", "give a file path"),
    errno.ENOTDIR: ("is not a folder", "give a folder path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENOTEMPTY: ("folder is not empty", "choose a new or empty folder"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.EIO: ("input/output error", "check the disk"),
}


def os_error_message(e: OSError) -> str:
    """'no space left on the device (/data/x.bin); free some space or write to another disk'."""
    what, fix = _OS_HINTS.get(e.errno or 0, (e.strerror or type(e).__name__, "check the path and the disk"))
    where = f" ({e.filename})" if e.filename else ""
    return f"{what}{where}; {fix}".replace("\n", " ")


# ---- output paths, checked before work starts ----


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on path's file system; None when unknown."""
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def read_only(path: str | os.PathLike) -> bool:
    """True when path lies on a file system mounted read-only (root cannot write there either)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def check_output(path: str | os.PathLike, kind: str = "file", what: str = "output", need_bytes: int = 0) -> Path:
    """Refuse, before any work, an output path that cannot be written: a folder where a file goes (or the
    reverse), a parent that is a file, a read-only file system, no permission, or less free space than
    `need_bytes` (a lower bound of what will be written; 0: unknown). kind: "file" or "dir". Returns the path."""
    p = Path(path).expanduser()
    if p.exists():
        if kind == "file" and p.is_dir():
            raise UserError(f"{what} {p} is a folder; give a file path, e.g. {p / ('out' + (p.suffix or '.json'))}")
        if kind == "dir" and not p.is_dir():
            raise UserError(f"{what} {p} is a file; give a folder path (a new or empty folder)")
    where = _nearest_existing(p if kind == "dir" and p.is_dir() else p.parent)
    if not where.is_dir():
        raise UserError(f"{what} {p} cannot be created: {where} is a file, not a folder; choose another path")
    if read_only(where):
        raise UserError(f"{what} {p} is on a read-only file system ({where}); write it to a writable folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p}: no permission to write in {where}; choose a folder of your own")
    free = free_bytes(where)
    if need_bytes > 0 and free is not None and free < need_bytes:
        raise UserError(
            f"{what} {p} needs at least {human_bytes(need_bytes)} but {where} has {human_bytes(free)} free; "
            "free some space or write to another disk"
        )
    return p


# ---- folders built beside their destination, then renamed into place ----

_STAGE = re.compile(r"\.(?P<name>.+)\.(?P<tag>[a-z]+)-(?P<pid>\d+)-[^.]+")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dir(out: str | os.PathLike) -> list[str]:
    """Clean up after a killed `staged_dir(out)`: put back an old folder that was moved aside when its
    replacement never arrived, and delete temp folders whose process is gone. Returns what it did."""
    out = Path(out).absolute()
    done: list[str] = []
    if not out.parent.is_dir():
        return done
    for p in sorted(out.parent.iterdir()):
        m = _STAGE.fullmatch(p.name)
        if not m or m["name"] != out.name or not p.is_dir() or _alive(int(m["pid"])):
            continue
        if m["tag"] == "old" and not out.exists() and (p / "data").is_dir():
            os.rename(p / "data", out)
            done.append(f"restored {out} from {p.name} (an interrupted replace)")
        shutil.rmtree(p, ignore_errors=True)
        if m["tag"] != "old":
            done.append(f"removed {p.name} (left by an interrupted run)")
    return done


@contextmanager
def staged_dir(out: str | os.PathLike, tag: str = "tmp", replace: bool = False) -> Iterator[Path]:
    """Yield a temp folder `.NAME.TAG-PID-XXXX` beside `out`; when the block ends without error it becomes
    `out` in one rename, on any error it is deleted (and if the process is killed, the next call on `out`
    deletes it). `out` may exist only as an empty folder, unless replace=True: then the old folder is moved
    aside (`.NAME.old-PID-XXXX/data`), the new one renamed in, the old one deleted; a kill between the two
    renames is undone by the next call (the old folder comes back)."""
    out = Path(out).absolute()
    recover_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{tag}-{os.getpid()}-"))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the finished folder should not be
        yield tmp
        if out.is_dir() and not any(out.iterdir()):
            os.replace(tmp, out)  # POSIX rename replaces an empty folder atomically
        elif out.exists():
            if not replace:
                raise UserError(f"{out} appeared while it was being written (another process?); choose another path")
            aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-{os.getpid()}-"))
            os.rename(out, aside / "data")
            os.rename(tmp, out)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
