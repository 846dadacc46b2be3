"""Files and directories the gateway keeps patient data in: its own user's only.

Raw HL7 messages name patients (PID: name, ID card, phone), so the database, its WAL
and shared-memory files, the data directory and uploaded files must not be readable by
other accounts on the host. The mode is set explicitly when they are made, whatever the
process's umask, and tightened on those an earlier release left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "private_dir", "private_file", "tighten"]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory only its owner may use."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)  # mkdir's mode is masked by the umask; an old one is tightened
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, readable and writable by its owner only."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE)
    os.close(fd)
    path.chmod(PRIVATE_FILE)
    return path


def tighten(*paths: Path) -> None:
    """Owner-only mode on those of ``paths`` that exist."""
    for path in paths:
        if path.exists():
            path.chmod(PRIVATE_FILE)
