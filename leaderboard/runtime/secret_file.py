"""Random secrets kept in a file of the data dir: created once, readable only by
the owner from the first byte on, and the same for every process that asks
(development defaults; production sets its secrets in the environment)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def persistent_secret(path: Path, *, nbytes: int = 32) -> str:
    """The secret in `path`, created (mode 0600) with `nbytes` random bytes if missing.
    Raises ValueError when the file exists but is empty."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(nbytes) + "\n")
        try:
            # link() fails if another process won the race; then theirs is used.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret
