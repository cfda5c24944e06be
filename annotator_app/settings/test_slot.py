"""One test run, one slot: its own PostgreSQL database name and Redis database.

Two `make test` runs on one machine (two checkouts, or CI beside a developer) share the
PostgreSQL and Redis servers. The first process of a run takes the first free slot
1..15 by an exclusive lock on a file in the temp folder, held until that process exits,
and rewrites DATABASE_URL (`pixmo` -> `pixmo_s3`; pytest-django then creates
`test_pixmo_s3`) and REDIS_URL (database 3) in its environment. Processes it starts (Celery
workers, the launcher under test) inherit the rewritten URLs and PIXMO_TEST_SLOT, so they
join the same run instead of taking a slot of their own.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SLOTS = range(1, 16)  # Redis has databases 0..15; 0 stays for `make run` and the like.
WAIT_SECONDS = 1800

_held: list[int] = []  # the lock's file descriptor lives as long as the process


def _try_lock(slot: int) -> int | None:
    path = Path(tempfile.gettempdir()) / f"pixmo-test-slot-{slot}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def database_url_for(url: str, slot: int) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "pixmo"
    return urlunsplit(parts._replace(path=f"/{name}_s{slot}"))


def redis_url_for(url: str, slot: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # unix:///path/redis.sock?db=N
        query = dict(parse_qsl(parts.query))
        query["db"] = str(slot)
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{slot}"))


def claim() -> int:
    """Take this run's slot (or the one inherited from the parent) and rewrite the URLs."""
    inherited = os.environ.get("PIXMO_TEST_SLOT")
    if inherited:
        return int(inherited)
    deadline = time.monotonic() + WAIT_SECONDS
    told = False
    while True:
        for slot in SLOTS:
            fd = _try_lock(slot)
            if fd is not None:
                _held.append(fd)
                os.environ["DATABASE_URL"] = database_url_for(os.environ["DATABASE_URL"], slot)
                os.environ["REDIS_URL"] = redis_url_for(os.environ["REDIS_URL"], slot)
                os.environ["PIXMO_TEST_SLOT"] = str(slot)
                return slot
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"all {len(SLOTS)} test slots are taken by other test runs on this machine "
                f"(locks {tempfile.gettempdir()}/pixmo-test-slot-*.lock)"
            )
        if not told:
            print("every test slot is taken by other runs; waiting for one", file=sys.stderr)
            told = True
        time.sleep(2)
