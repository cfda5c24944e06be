"""Helpers for the operations tests: a throw-away database on the suite's PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

from annotator_app.runtime import maintenance_connection

# The same defaults as annotator_app.settings.test: `make test` exports the real URLs.
SUITE_DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
SUITE_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    """A DATABASE_URL naming a new, empty database that is dropped afterwards."""
    name = f"pixmo_ops_{secrets.token_hex(4)}"
    try:
        conn = maintenance_connection(SUITE_DATABASE_URL)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {SUITE_DATABASE_URL} is not reachable ({exc}); "
            "run `make test`, which starts it or the embedded one"
        )
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(SUITE_DATABASE_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        conn.close()
