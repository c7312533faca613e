"""Ringfence's files on disk are its own: the data dir 0700, the database files 0600.

The data dir holds the SQLite database (every message, hashed tokens), TLS keys and
the relay's working files. Created under the usual umask 022 they were world-readable
(a 0755 directory, a 0644 database and -wal and -shm files). Modes are set explicitly,
not through the umask (which is process-wide and would race with other threads), and
set again at every start, so that an install made before this is closed up too.

SQLite creates a database's -wal and -shm files with the database file's own mode, so a
0600 database keeps them 0600 whenever SQLite makes them later.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# The files SQLite keeps beside a database.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) and leave it 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def private_sqlite_files(database: Path) -> None:
    """Create the database file 0600 if it is missing, and leave it and the companion
    files that exist 0600. Run before SQLite opens it, and again after.

    Existing files are changed by path only, never opened: closing any descriptor of a
    database file drops every POSIX lock this process holds on it, SQLite's included,
    and another process (``ringfence admin``) would then take itself for the last user,
    checkpoint and remove the WAL under this one's feet (stale reads, or worse)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for path in (database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, FILE_MODE)
