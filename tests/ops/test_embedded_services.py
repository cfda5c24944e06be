"""The launcher's own embedded PostgreSQL and Redis: start, use, stop, keep the data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest
import redis

from annotator_app import runtime


def _query(database_url: str, statement: str) -> list[tuple[object, ...]]:
    import dj_database_url

    cfg = dj_database_url.parse(database_url)
    conn = psycopg2.connect(dbname=cfg["NAME"], user=cfg["USER"], host=cfg["HOST"])
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.mark.slow
def test_embedded_servers_start_serve_stop_and_keep_data(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    # Not under pytest's private base temp dir: as root the server runs as another user,
    # which must be able to traverse every parent folder.
    var = Path(tempfile.mkdtemp(prefix="pixmo-embedded-")) / "var"
    try:
        _start_use_stop_restart(var)
    finally:
        shutil.rmtree(var.parent, ignore_errors=True)


def _start_use_stop_restart(var: Path) -> None:
    services = runtime.start_services(var, database="pixmo_embedded")
    try:
        assert services.postgres is not None and services.redis is not None
        assert services.database_url.endswith("/pixmo_embedded")
        _query(services.database_url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x')")
        client = redis.Redis.from_url(services.redis_url)
        client.set("kept", "y")
        client.save()
    finally:
        services.stop()

    assert not (var / "postgres" / "postmaster.pid").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(services.redis_url).ping()

    again = runtime.start_services(var, database="pixmo_embedded")
    try:
        assert _query(again.database_url, "SELECT v FROM kept") == [("x",)]
        assert redis.Redis.from_url(again.redis_url).get("kept") == b"y"
    finally:
        again.stop()
