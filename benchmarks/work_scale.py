"""The work engine at PixMo scale: heavy annotators, and progress beside huge campaigns.

Two scenarios, each in its own scratch database on the server of DATABASE_URL (dropped
at the end); all bulk rows come from SQL (generate_series), never from the ORM.

heavy: overlap-3 campaigns of `--sizes` items (default 100k and 1M). For each order
  (depth-first, breadth-first) and each history size (`--histories`, default 0, 1k, 10k
  and 50k), a fresh annotator gets that many submitted assignments on the campaign's
  first items, all still open (2 slots left each: exactly the case where the old
  claim walked the whole history). Their first claim is reported on its own (no
  cursor yet: it walks the history once and leaves the cursor); then `--claims` claims
  are timed, each followed by an untimed submit. Afterwards the annotator's rows are
  removed and the items' slots restored, so every phase starts from the same state.
  Also prints the buffers the cursor claim reads with the largest history.

progress: a 10k-item and a 1M-item campaign, and another 1M-item campaign beside
  them, each with half its items finished (one accepted assignment) and some
  submissions awaiting review, by 20 annotators. Counters are built by the repair
  (its time is printed: it is what the hourly beat task costs). Then `--requests`
  GETs of the progress API and of the dashboard per campaign, through Django's
  test client (view, serializers and template included), rounds interleaved; the
  web process's own CPU time per request is printed beside the wall-clock figures
  (on a loaded machine the wall clock is mostly waiting for a CPU).

    .venv/bin/python benchmarks/work_scale.py heavy
    .venv/bin/python benchmarks/work_scale.py progress

Goals: heavy: p95 <= 25 ms with a 50k history in the 1M campaign, and p95(50k) /
p95(0) <= 1.5; progress: API and dashboard p95 <= 100 ms at 1M items.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.test")
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
# Django starts on a throw-away name; the scenario switches to its scratch database.
os.environ["DATABASE_URL"] = urlunsplit(urlsplit(BASE_URL)._replace(path="/pixmo_bench_none"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _figures(timings: list[float]) -> dict[str, Any]:
    return {
        "n": len(timings),
        "p50_ms": round(_percentile(timings, 50), 2),
        "p95_ms": round(_percentile(timings, 95), 2),
        "p99_ms": round(_percentile(timings, 99), 2),
    }


def _sql(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def _images(n: int) -> None:
    _sql(
        """
        INSERT INTO catalog_image (sha256, width, height, format, mime, size_bytes,
                                   source_url, storage_key, created_at)
        SELECT h, 64, 48, 'png', 'image/png', 100, '', 'images/' || h || '.png', now()
        FROM (SELECT md5(g::text) || md5((-g)::text) AS h FROM generate_series(1, %s) g) s
        """,
        [n],
    )


def _campaign(name: str, n_items: int, overlap: int) -> int:
    """A campaign over the first `n_items` images, its items inserted by SQL."""
    from annotator_app.work.models import Campaign

    campaign = Campaign.objects.create(name=name, kind="cap", overlap=overlap)
    _sql(
        "INSERT INTO work_campaign_images (campaign_id, image_id)"
        " SELECT %s, id FROM catalog_image ORDER BY id LIMIT %s",
        [campaign.pk, n_items],
    )
    _sql(
        "INSERT INTO work_workitem (campaign_id, image_id, open_slots, done_count, created_at)"
        " SELECT %s, image_id, %s, 0, now() FROM work_campaign_images WHERE campaign_id = %s",
        [campaign.pk, overlap, campaign.pk],
    )
    return int(campaign.pk)


def _users(prefix: str, n: int, role: str = "annotator") -> list[int]:
    from django.contrib.auth.hashers import make_password

    from annotator_app.accounts.models import User

    unusable = make_password(None)
    made = User.objects.bulk_create(
        [User(username=f"{prefix}{i}", password=unusable, role=role) for i in range(n)]
    )
    return [u.pk for u in made]


# --- heavy annotators ----------------------------------------------------------------------


def _give_history(campaign_id: int, user_id: int, n: int) -> None:
    """`n` submitted assignments on the campaign's first items; each keeps open slots."""
    _sql(
        """
        WITH mine AS (
            UPDATE work_workitem SET open_slots = open_slots - 1, done_count = done_count + 1
            WHERE id IN (SELECT id FROM work_workitem WHERE campaign_id = %(c)s
                         ORDER BY id LIMIT %(n)s)
            RETURNING id
        )
        INSERT INTO work_assignment (item_id, annotator_id, status, started_at, submitted_at,
                                     active_seconds, review_reason)
        SELECT id, %(u)s, 'submitted', now(), now(), 60, '' FROM mine
        """,
        {"c": campaign_id, "n": n, "u": user_id},
    )
    # The previous phase's rows were deleted and its items updated back: vacuum, so no
    # phase walks dead index entries another phase left (autovacuum's job in service).
    _sql("VACUUM ANALYZE work_workitem, work_assignment")


def _forget(user_id: int) -> None:
    """Remove the annotator's rows and give their items' slots back."""
    _sql(
        """
        WITH gone AS (
            DELETE FROM work_assignment WHERE annotator_id = %(u)s RETURNING item_id, status
        )
        UPDATE work_workitem w
        SET open_slots = w.open_slots + 1,
            done_count = w.done_count - (gone.status <> 'leased')::int
        FROM gone WHERE w.id = gone.item_id
        """,
        {"u": user_id},
    )
    _sql("DELETE FROM work_claimcursor WHERE annotator_id = %s", [user_id])
    _sql("DELETE FROM work_reopeneditem")


def _claims(campaign_id: int, user_id: int, n: int) -> tuple[float, list[float]]:
    """The first claim's time, then `n` timed claims, each followed by a submit."""
    from django.db import transaction

    from annotator_app.accounts.models import User
    from annotator_app.work.models import Campaign
    from annotator_app.work.services import assignment_next, assignment_submit

    user = User.objects.get(pk=user_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    timings: list[float] = []
    for _ in range(n + 1):
        began = time.perf_counter()
        assignment = assignment_next(user=user, campaign=campaign)
        timings.append((time.perf_counter() - began) * 1000)
        assert assignment is not None, "the campaign ran out of items"
        with transaction.atomic():
            assignment_submit(assignment=assignment)
    return timings[0], timings[1:]


def _cursor_buffers(campaign_id: int, user_id: int, breadth_first: bool) -> int:
    """Shared buffers the forward claim of the most-started lane reads, with the cursor."""
    from django.utils import timezone

    from annotator_app.work.claiming import CLAIM_BREADTH_FIRST, CLAIM_DEPTH_FIRST

    lane = 1 if breadth_first else 0
    rows = _sql(
        "SELECT after_id FROM work_claimcursor WHERE campaign_id = %s AND annotator_id = %s"
        " AND lane = %s",
        [campaign_id, user_id, lane],
    )
    now = timezone.now()
    params = {"c": campaign_id, "u": user_id, "now": now, "until": now, "lane": lane}
    params["after"] = rows[0][0] if rows else 0
    sql = CLAIM_BREADTH_FIRST if breadth_first else CLAIM_DEPTH_FIRST
    _sql("BEGIN")
    plan = _sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)[0][0]
    _sql("ROLLBACK")
    top = plan[0]["Plan"]
    return int(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))


def heavy(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    _images(max(args.sizes))
    campaigns = {size: _campaign(f"heavy {size}", size, 3) for size in args.sizes}
    _sql("VACUUM ANALYZE catalog_image, work_workitem, work_campaign_images")
    print(f"loaded {sum(args.sizes)} items in {time.perf_counter() - began:.0f} s", flush=True)
    results = []
    for size, campaign_id in campaigns.items():
        for breadth_first in (False, True):
            _sql(
                "UPDATE work_campaign SET breadth_first = %s WHERE id = %s",
                [breadth_first, campaign_id],
            )
            order = "breadth-first" if breadth_first else "depth-first"
            for history in args.histories:
                (user_id,) = _users(f"heavy-{size}-{order}-{history}-", 1)
                _give_history(campaign_id, user_id, history)
                first, timings = _claims(campaign_id, user_id, args.claims)
                buffers = _cursor_buffers(campaign_id, user_id, breadth_first)
                _forget(user_id)
                row = {"items": size, "order": order, "history": history,
                       "first_claim_ms": round(first, 1), "buffers": buffers,
                       **_figures(timings)}  # fmt: skip
                results.append(row)
                print(
                    f"{size:>8} items {order:>13}, history {history:>6}: first claim "
                    f"{row['first_claim_ms']} ms; then p50 {row['p50_ms']} ms, p95 "
                    f"{row['p95_ms']} ms, p99 {row['p99_ms']} ms; cursor claim reads "
                    f"{buffers} buffers",
                    flush=True,
                )
    summary: dict[str, Any] = {"scenario": "heavy", "claims": args.claims, "results": results}
    for size in args.sizes:
        for order in ("depth-first", "breadth-first"):
            rows = {r["history"]: r for r in results if r["items"] == size and r["order"] == order}
            low, high = min(rows), max(rows)
            ratio = rows[high]["p95_ms"] / rows[low]["p95_ms"]
            summary[f"p95_ratio_{size}_{order}"] = round(ratio, 2)
            print(f"{size} items {order}: p95(history {high}) / p95(history {low}) = {ratio:.2f}")
    return summary


# --- progress and dashboard ----------------------------------------------------------------


def _finish_half(campaign_id: int, annotators: list[int], waiting: int) -> None:
    """Half the items get one accepted assignment, `waiting` more one submitted one."""
    _sql(
        """
        WITH picked AS (
            SELECT id, row_number() OVER (ORDER BY id) AS k FROM work_workitem
            WHERE campaign_id = %(c)s ORDER BY id
            LIMIT (SELECT count(*) / 2 FROM work_workitem WHERE campaign_id = %(c)s) + %(w)s
        ), done AS (
            UPDATE work_workitem w SET open_slots = w.open_slots - 1, done_count = 1
            FROM picked WHERE w.id = picked.id RETURNING w.id, picked.k
        )
        INSERT INTO work_assignment (item_id, annotator_id, status, started_at, submitted_at,
                                     active_seconds, review_reason)
        SELECT d.id, (%(users)s::bigint[])[1 + d.k %% %(n)s],
               CASE WHEN d.k <= (SELECT count(*) FROM done) - %(w)s THEN 'accepted'
                    ELSE 'submitted' END,
               now() - (d.k %% 30) * interval '1 day', now() - (d.k %% 30) * interval '1 day',
               60, ''
        FROM done d
        """,
        {"c": campaign_id, "w": waiting, "users": annotators, "n": len(annotators)},
    )


def progress(args: argparse.Namespace) -> dict[str, Any]:
    from django.test import Client

    from annotator_app.accounts.models import User
    from annotator_app.work.counters import counters_repair

    began = time.perf_counter()
    _images(max(args.sizes))
    annotators = _users("annotator", 20)
    measured = {size: _campaign(f"measured {size}", size, 1) for size in args.sizes}
    beside = _campaign("beside 1M", max(args.sizes), 1)
    for campaign_id in [*measured.values(), beside]:
        _finish_half(campaign_id, annotators, waiting=500)
    _sql("VACUUM ANALYZE")
    print(f"loaded in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    counters_repair()
    repair_s = time.perf_counter() - began
    print(f"counters built by the repair in {repair_s:.1f} s (every campaign)", flush=True)

    admin = User.objects.create(username="bench-admin", role="admin")
    client = Client(HTTP_HOST="localhost")  # an ALLOWED_HOSTS name
    client.force_login(admin)
    urls = {}
    for size, campaign_id in measured.items():
        urls[(size, "progress API")] = f"/api/v1/work/campaigns/{campaign_id}/progress/"
        urls[(size, "dashboard")] = f"/work/dashboard/?campaign={campaign_id}"
    timings: dict[tuple[int, str], list[float]] = {key: [] for key in urls}
    cpu: dict[tuple[int, str], list[float]] = {key: [] for key in urls}
    for url in urls.values():  # warm: the first request of each pays imports
        first = client.get(url)
        assert first.status_code == 200, (url, first.status_code)
    for _ in range(args.requests):
        for key, url in urls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            response = client.get(url)
            timings[key].append((time.perf_counter() - t0) * 1000)
            cpu[key].append((time.process_time() - c0) * 1000)
            assert response.status_code == 200, url
    results = []
    for (size, what), values in timings.items():
        row = {"items": size, "what": what, **_figures(values)}
        row["cpu_p50_ms"] = round(_percentile(cpu[(size, what)], 50), 2)
        results.append(row)
        print(
            f"{size:>8} items ({max(args.sizes)} beside), {what:>12}: p50 {row['p50_ms']} ms,"
            f" p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms (web process CPU p50"
            f" {row['cpu_p50_ms']} ms)"
        )
    return {"scenario": "progress", "repair_s": round(repair_s, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=["heavy", "progress"])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--histories", type=int, nargs="+", default=[0, 1000, 10_000, 50_000])
    parser.add_argument("--claims", type=int, default=200, help="timed claims per phase")
    parser.add_argument("--requests", type=int, default=40, help="GETs per page and size")
    args = parser.parse_args()
    if args.sizes is None:
        args.sizes = [100_000, 1_000_000] if args.scenario == "heavy" else [10_000, 1_000_000]

    import django
    from psycopg2 import sql

    from annotator_app.runtime import maintenance_connection

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    # A `kill` ends the run through `finally`, which drops the scratch database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    admin = maintenance_connection(BASE_URL)
    name = f"pixmo_bench_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        connections.close_all()
        settings.DATABASES["default"]["NAME"] = name
        call_command("migrate", verbosity=0)
        load = os.getloadavg()
        summary = heavy(args) if args.scenario == "heavy" else progress(args)
        summary["load_avg_start"] = [round(x, 1) for x in load]
        summary["load_avg_end"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps(summary))
    finally:
        connections.close_all()
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        admin.close()


if __name__ == "__main__":
    main()
