"""Where a device keeps its refresh token: the OS keyring when there is one, otherwise a
file in the data directory readable only by its owner. Tokens never go into logs."""

from __future__ import annotations

import contextlib
import logging
import os
from functools import cached_property
from pathlib import Path

log = logging.getLogger("ferry.sync")
SERVICE = "ferry"
FILE = "credentials"


class CredentialStore:
    def __init__(self, data_dir: Path, use_keyring: bool = True) -> None:
        self.path = data_dir / FILE
        self._use_keyring = use_keyring
        self._key = str(data_dir.resolve())

    @cached_property
    def _keyring(self):  # type: ignore[no-untyped-def]
        # Probing the keyring takes a noticeable moment: only when a token is first needed.
        return self._usable_keyring() if self._use_keyring else None

    @staticmethod
    def _usable_keyring():  # type: ignore[no-untyped-def]
        try:
            import keyring
            from keyring.backends import fail
        except ImportError:
            return None
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return backend

    @property
    def where(self) -> str:
        return "keyring" if self._keyring is not None else str(self.path)

    def save(self, token: str) -> None:
        if self._keyring is not None:
            try:
                self._keyring.set_password(SERVICE, self._key, token)
                return
            except Exception as exc:  # a locked or broken keyring: fall back to the file
                log.warning("keyring unavailable (%s); keeping the token in %s", type(exc).__name__, self.path)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        os.replace(tmp, self.path)

    def load(self) -> str | None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                found = self._keyring.get_password(SERVICE, self._key)
                if found:
                    return found
        try:
            return self.path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def clear(self) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                self._keyring.delete_password(SERVICE, self._key)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
