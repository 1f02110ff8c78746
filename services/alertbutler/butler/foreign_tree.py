"""Reading a directory tree this project did not write (an export, a recording, an archive).

Such a tree is untrusted: a symbolic link inside it could make an import copy (or hard-link,
or move) any file readable on this machine into a repository, and a FIFO or device would
hang or feed a reader. So every reader of a foreign tree first lists it with
:func:`find_unsafe_entries` (nothing is followed) and refuses it if anything but plain
directories and regular files is found; and the files it then transfers are opened through
:func:`open_parent` (each directory component opened with ``O_NOFOLLOW`` relative to the one
before), so a link swapped in after the check is refused too rather than followed.

The top directory itself is the one the operator named on the command line and may be a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._errors import LinkRefusedError, UnsafePathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def find_unsafe_entries(root: str | Path) -> list[tuple[Path, str]]:
    """Every entry under ``root`` that is not a plain directory or regular file, with what it
    is (``"a symbolic link"``, ``"a FIFO"``...); links are listed, never followed."""
    found: list[tuple[Path, str]] = []
    todo = [Path(root)]
    while todo:
        directory = todo.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    todo.append(Path(entry.path))
                elif not stat.S_ISREG(mode):
                    found.append((Path(entry.path), _kind(mode)))
    return sorted(found)


def check_tree(root: str | Path, what: str) -> None:
    """Refuse ``root`` (a ``what``: "export", "recording"...) if it holds any link or special
    file; the error names the first such entry and says how many there are."""
    bad = find_unsafe_entries(root)
    if bad:
        path, kind = bad[0]
        more = f" (and {len(bad) - 1} more such entries)" if len(bad) > 1 else ""
        raise LinkRefusedError(f"{path}: {kind} inside the {what} {root} is refused: it could "
                               f"reach any file on this machine{more}")


def _parts(rel: str) -> list[str]:
    parts = rel.replace("\\", "/").split("/")
    if not rel or rel.startswith("/") or "\x00" in rel or any(
            p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"path {rel!r} is not a relative path that stays inside the tree")
    return parts


def open_parent(root: str | Path, rel: str) -> tuple[int, str]:
    """The directory holding ``root/rel`` opened without following any link on the way, and
    the file's name in it (use with ``dir_fd=``; the caller closes the descriptor)."""
    parts = _parts(rel)
    fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the named top may be a link
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                where = Path(root, *parts[:i + 1])
                if os.path.islink(where):
                    raise LinkRefusedError(f"{where}: a symbolic link inside {root} is refused"
                                           ) from None
                raise FileNotFoundError(exc.errno, f"{where}: {exc.strerror}") from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def check_regular(root: str | Path, rel: str) -> int:
    """``root/rel`` is a regular file reached through no link: returns its size."""
    fd, name = open_parent(root, rel)
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise LinkRefusedError(f"{Path(root, rel)}: {_kind(st.st_mode)} inside {root} is "
                               "refused")
    return st.st_size


def open_regular(root: str | Path, rel: str) -> int:
    """A read descriptor on ``root/rel``, refused if any component is a link or the file is
    not regular (``O_NOFOLLOW`` on every step, so nothing swapped in later is followed)."""
    fd, name = open_parent(root, rel)
    try:
        try:
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                              | getattr(os, "O_CLOEXEC", 0), dir_fd=fd)
        except OSError as exc:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)  # FileNotFoundError if gone
            raise LinkRefusedError(f"{Path(root, rel)}: {_kind(st.st_mode)} inside {root} is "
                                   f"refused ({exc.strerror})") from None
    finally:
        os.close(fd)
    mode = os.fstat(file_fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(file_fd)
        raise LinkRefusedError(f"{Path(root, rel)}: {_kind(mode)} inside {root} is refused")
    return file_fd
