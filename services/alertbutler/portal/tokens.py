"""API tokens for the portal's writes (filters, watchlists).

``alertbutler serve token create NAME`` prints a new token once; only its SHA-256 digest is
kept, in ``<data_dir>/portal/tokens.json`` (mode 0600). A token is 32 random bytes
(``secrets.token_urlsafe``), so a plain digest is enough: there is nothing to guess that a
slow password hash would protect. A request presents ``Authorization: Bearer TOKEN``; its
digest is compared with every stored one with :func:`hmac.compare_digest`, whose time does
not depend on where the bytes differ, and the loop never stops early.

Without a token a write is refused with 401; with a token that is not (or no longer) known,
403. Reads stay open on loopback; a portal listening beyond loopback asks a token for reads
too (see :func:`alertbutler.portal.app.create_app`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from alertbutler.errors import AlertbutlerError

PREFIX = "abt_"  # recognisable in a leaked log or a secret scanner
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenError(AlertbutlerError, ValueError):
    """A token name or store that cannot be used."""


def tokens_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "portal" / "tokens.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class TokenStore:
    """The stored digests of one data directory's tokens, by name."""

    path: Path

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path.is_symlink():
            raise TokenError(f"{self.path} is a symbolic link: refused")
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except ValueError as exc:
            raise TokenError(f"{self.path}: unreadable token store: {exc}") from None
        if not isinstance(data, dict):
            raise TokenError(f"{self.path}: expected a mapping of token names")
        return data

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def create(self, name: str) -> str:
        """A new token for ``name`` (replacing an earlier one of that name); shown once."""
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: 1-64 letters, digits, '_', '.', '@', '-'")
        token = PREFIX + secrets.token_urlsafe(32)
        data = self._read()
        data[name] = {"sha256": _digest(token),
                      "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self._write(data)
        return token

    def revoke(self, name: str) -> bool:
        data = self._read()
        if data.pop(name, None) is None:
            return False
        self._write(data)
        return True

    def names(self) -> list[str]:
        return sorted(self._read())

    def check(self, token: str) -> str | None:
        """The name of the token, or None; constant time in where a digest differs."""
        digest = _digest(token).encode()
        found = None
        for name, entry in self._read().items():
            if hmac.compare_digest(digest, str(entry.get("sha256", "")).encode()):
                found = name
        return found
