"""Claim latency of `assignment_next` with 10k and 1M work items and 50 concurrent claimers.

For each size it creates a scratch database on the server of DATABASE_URL (dropped at
the end), migrates it, bulk-loads the catalogue rows and the campaign's items with
generate_series and the real `campaign_sync_items`, marks a share of the items as
finished (`--done`, with one accepted assignment each, so the claim has finished
items and old assignments to ignore), runs ANALYZE and prints the claim's EXPLAIN.
Then, for `--rounds` rounds, each size in turn (so drifting background load falls on
all sizes alike) and once per `--pause-ms` value, `--claimers` processes (each its own
connection) start together and each claims `--claims` times (claim timed; submit untimed, so the
next claim is a new item), pausing that long (jittered) between claims: 0 is a closed
loop that saturates the machine, 500 ms is closer to annotators, who work on an item
between claims.

    .venv/bin/python benchmarks/claim_latency.py --items 10000 1000000 --claimers 50

Prints p50/p95/p99 per size and pause, the ratio p95(largest)/p95(smallest) per
pause, and one JSON line.
Goal: p95 at 1M <= 25 ms and the ratio <= 1.5 (the claim reads an index, never scans).

Annotators with long histories (0 to 50k prior assignments in overlap-3 campaigns of
100k and 1M items) and the progress/dashboard reads beside a 1M-item campaign are
measured by benchmarks/work_scale.py (`heavy` and `progress`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.test")
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
# Django starts on a throw-away name; each size switches to its own scratch database.
os.environ["DATABASE_URL"] = urlunsplit(urlsplit(BASE_URL)._replace(path="/pixmo_bench_none"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _load(n_items: int, done_share: float, claimers: int) -> tuple[int, list[int]]:
    """Catalogue rows, one campaign over them, finished items and the claimers."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from annotator_app.accounts.models import User
    from annotator_app.work.counters import counters_repair_campaign
    from annotator_app.work.models import Campaign
    from annotator_app.work.services import campaign_sync_items

    campaign = Campaign.objects.create(name="bench", kind="cap", overlap=1)
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"claimer{i}", password=unusable) for i in range(claimers)]
    )
    past = User.objects.create(username="past-annotator", password=unusable)
    n_done = int(n_items * done_share)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO catalog_image (sha256, width, height, format, mime, size_bytes,
                                       source_url, storage_key, created_at)
            SELECT h, 64, 48, 'png', 'image/png', 100, '', 'images/' || h || '.png', now()
            FROM (SELECT md5(g::text) || md5((-g)::text) AS h
                  FROM generate_series(1, %s) g) s
            """,
            [n_items],
        )
        cur.execute(
            "INSERT INTO work_campaign_images (campaign_id, image_id) "
            "SELECT %s, id FROM catalog_image",
            [campaign.pk],
        )
    campaign_sync_items(campaign=campaign)
    with connection.cursor() as cur:
        # The first `done` items are finished: slot taken by an accepted assignment.
        cur.execute(
            """
            WITH finished AS (
                UPDATE work_workitem SET open_slots = 0, done_count = 1
                WHERE id IN (SELECT id FROM work_workitem ORDER BY id LIMIT %s)
                RETURNING id
            )
            INSERT INTO work_assignment (item_id, annotator_id, status, leased_until,
                                         heartbeat_at, started_at, submitted_at,
                                         active_seconds, review_reason)
            SELECT id, %s, 'accepted', NULL, NULL, now(), now(), 60, '' FROM finished
            """,
            [n_done, past.pk],
        )
    # The finished items were written by SQL: build the progress counters from the rows.
    counters_repair_campaign(campaign_id=campaign.pk)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE work_workitem, work_assignment, catalog_image")
    return campaign.pk, [u.pk for u in users]


def _explain(campaign_id: int, user_id: int) -> str:
    from django.db import connection
    from django.utils import timezone

    from annotator_app.work.claiming import CLAIM_DEPTH_FIRST

    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) " + CLAIM_DEPTH_FIRST,
            {"c": campaign_id, "u": user_id, "now": now, "until": now, "after": 0, "lane": 0},
        )
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK")
    return plan


def _claimer(
    campaign_id: int, user_id: int, claims: int, pause_ms: float, start: Any, out: Any
) -> None:  # fmt: skip
    from django.db import connections, transaction

    from annotator_app.accounts.models import User
    from annotator_app.work.models import Campaign
    from annotator_app.work.services import assignment_next, assignment_submit

    connections.close_all()  # never share the parent's socket
    user = User.objects.get(pk=user_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    timings: list[float] = []
    rng = random.Random(user_id)
    start.wait()
    for _ in range(claims):
        if pause_ms:
            # An annotator's time on the item, jittered so claims do not arrive in step.
            time.sleep(rng.uniform(0.5, 1.5) * pause_ms / 1000)
        began = time.perf_counter()
        assignment = assignment_next(user=user, campaign=campaign)
        timings.append((time.perf_counter() - began) * 1000)
        if assignment is None:
            break
        with transaction.atomic():
            assignment_submit(assignment=assignment)
    connections.close_all()
    out.put(timings)


def _use(name: str) -> None:
    """Point Django's default connection at scratch database `name`."""
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    settings.DATABASES["default"]["NAME"] = name


def _prepare(n_items: int, args: argparse.Namespace, admin: Any) -> dict[str, Any]:
    """A new scratch database holding `n_items` items; returns what the phases need."""
    from django.core.management import call_command
    from psycopg2 import sql

    name = f"pixmo_bench_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _use(name)
    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    # Every phase must find open items: finish fewer when the size is small.
    claims = args.claimers * args.claims * args.rounds * len(args.pause_ms)
    done = min(args.done, max(0.0, 1 - 1.2 * claims / n_items))
    if done < args.done:
        print(f"{n_items} items: {done:.0%} finished (not {args.done:.0%}) to leave enough open")
    campaign_id, user_ids = _load(n_items, done, args.claimers)
    return {
        "items": n_items,
        "db": name,
        "campaign_id": campaign_id,
        "user_ids": user_ids,
        "load_s": round(time.perf_counter() - began, 1),
        "plan": _explain(campaign_id, user_ids[0]),
    }


def _phase(campaign_id: int, user_ids: list[int], pause_ms: float, claims: int) -> list[float]:
    """All claimers start together; each claims `claims` times, `pause_ms` apart."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(campaign_id, uid, claims, pause_ms, start, out))
        for uid in user_ids
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # let every process connect before the gun
    start.set()
    timings: list[float] = []
    for _ in procs:
        timings.extend(out.get())
    for proc in procs:
        proc.join()
    return timings


def _figures(timings: list[float]) -> dict[str, Any]:
    return {
        "claims": len(timings),
        "p50_ms": round(_percentile(timings, 50), 2),
        "p95_ms": round(_percentile(timings, 95), 2),
        "p99_ms": round(_percentile(timings, 99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--claims", type=int, default=10, help="claims per claimer and phase")
    parser.add_argument("--rounds", type=int, default=3, help="phases per size and pause")
    parser.add_argument("--done", type=float, default=0.5, help="share of finished items")
    parser.add_argument(
        "--pause-ms",
        type=float,
        nargs="+",
        default=[0.0, 500.0],
        help="pause between one claimer's claims, one phase each (0: back to back)",
    )
    args = parser.parse_args()

    import django
    from psycopg2 import sql

    from annotator_app.runtime import maintenance_connection

    django.setup()
    admin = maintenance_connection(BASE_URL)
    sizes: list[dict[str, Any]] = []
    try:
        for n_items in args.items:
            size = _prepare(n_items, args, admin)
            sizes.append(size)
            print(f"\n== {n_items} items ({size['load_s']} s to load) ==\nclaim plan:")
            print(size["plan"], flush=True)
        # Sizes take turns, round after round, so drifting background load on a shared
        # machine falls on every size alike.
        timings: dict[tuple[int, float], list[float]] = {}
        for _ in range(args.rounds):
            for pause in args.pause_ms:
                for size in sizes:
                    _use(size["db"])
                    got = _phase(size["campaign_id"], size["user_ids"], pause, args.claims)
                    timings.setdefault((size["items"], pause), []).extend(got)
    finally:
        from django.db import connections

        connections.close_all()
        with admin.cursor() as cur:
            for size in sizes:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(size["db"])
                    )
                )
        admin.close()

    summary: dict[str, Any] = {"claimers": args.claimers, "rounds": args.rounds, "results": []}
    print()
    for pause in args.pause_ms:
        for size in sizes:
            figures = _figures(timings[(size["items"], pause)])
            summary["results"].append({"items": size["items"], "pause_ms": pause, **figures})
            print(
                f"{size['items']:>9} items, pause {pause:>4.0f} ms: {figures['claims']} claims "
                f"by {args.claimers} claimers: p50 {figures['p50_ms']} ms, "
                f"p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms"
            )
        if len(sizes) > 1:
            small = _figures(timings[(sizes[0]["items"], pause)])["p95_ms"]
            large = _figures(timings[(sizes[-1]["items"], pause)])["p95_ms"]
            summary[f"p95_ratio_pause_{pause:.0f}ms"] = round(large / small, 2)
            print(
                f"pause {pause:.0f} ms: p95({sizes[-1]['items']}) / p95({sizes[0]['items']})"
                f" = {large / small:.2f}"
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
