"""Export throughput and memory: pixmo-points and pixmo-cap at 100k and 1M rows.

Creates a scratch database on the server of DATABASE_URL (dropped at the end), migrates
it and generates the rows with SQL (generate_series): for points, 5 labels per
annotation with 0..5 points each; for cap, one summary caption (~600 characters) and
one transcript (~700 characters) per image. The newest `--rows[0]` rows of each set are
dated later than the rest, so the small export is `--since` that date and the large one
is everything. Then, for each dataset and size, in fresh child processes:

1. ``COPY (SELECT the same columns) TO STDOUT`` into a sink that discards the bytes
   (the source's own row query, one JSON object per row; warmed once, then timed);
2. the export itself (services.export_create + export_run, parquet, image URLs from a
   base URL), timed, with the child's peak RSS (ru_maxrss).

    .venv/bin/python benchmarks/export_throughput.py --rows 100000 1000000

Prints rows/s, seconds, export/COPY ratio and peak RSS per dataset and size, the RSS
ratio largest/smallest, and one JSON line.
Goals: export time <= 3x the COPY time; peak RSS at 1M <= 1.3x peak RSS at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.test")
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
NEW_DAY, OLD_DAY, SINCE = "2026-01-10", "2026-01-01", "2026-01-05"
LABELS_PER_ANNOTATION = 5


def _setup(db: str) -> None:
    """Django on scratch database `db` (the test settings would rename it: set after)."""
    os.environ["EXPORT_IMAGE_BASE_URL"] = "https://images.example.org/pixmo/"
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    settings.DATABASES["default"]["NAME"] = db


GENERATE = """
INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,
                           is_staff, is_active, date_joined, role)
SELECT '!', false, 'bench' || g, '', '', '', false, true, now(), 'annotator'
FROM generate_series(1, 50) g;

INSERT INTO catalog_image (sha256, width, height, format, mime, size_bytes, source_url,
                           storage_key, created_at)
SELECT h, 640, 480, 'jpeg', 'image/jpeg', 50000, '',
       'images/' || substr(h, 1, 2) || '/' || substr(h, 3, 2) || '/' || h || '.jpg', now()
FROM (SELECT md5(g::text) || md5((-g)::text) AS h FROM generate_series(1, %(images)s) g) s;

INSERT INTO work_campaign (name, kind, overlap, min_seconds, max_seconds, label_prompts,
    collection_method, guidelines, priority, active, breadth_first, lease_seconds,
    created_at, updated_at)
VALUES ('bench points', 'points', 1, 60, 600, '[]', 'pointing', '', 0, true, false, 600,
        now(), now()),
       ('bench cap', 'cap', 1, 60, 600, '[]', 'counting', '', 0, true, false, 600,
        now(), now());
"""

POINTS = """
CREATE TEMP TABLE bench_ann AS
SELECT i.id AS image_id, row_number() OVER (ORDER BY i.id) AS n
FROM catalog_image i ORDER BY i.id LIMIT %(annotations)s;

INSERT INTO work_workitem (campaign_id, image_id, open_slots, done_count, created_at)
SELECT c.id, a.image_id, 0, 1, now() FROM bench_ann a, work_campaign c
WHERE c.name = 'bench points';

INSERT INTO work_assignment (item_id, annotator_id, status, started_at, submitted_at,
                             active_seconds, review_reason, skip_reason)
SELECT w.id, (SELECT min(id) FROM accounts_user) + (w.id %% 50), 'accepted', now(), now(),
       40, '', ''
FROM work_workitem w JOIN work_campaign c ON c.id = w.campaign_id WHERE c.name = 'bench points';

INSERT INTO points_pointsannotation (assignment_id, annotator_id, campaign_id, item_id,
    image_id, idempotency_key, superseded, created_at, updated_at)
SELECT s.id, s.annotator_id, w.campaign_id, w.id, w.image_id, md5(s.id::text), false,
       CASE WHEN a.n > %(old)s THEN %(new_day)s::timestamptz ELSE %(old_day)s::timestamptz END,
       now()
FROM work_assignment s JOIN work_workitem w ON w.id = s.item_id
JOIN bench_ann a ON a.image_id = w.image_id
JOIN work_campaign c ON c.id = w.campaign_id WHERE c.name = 'bench points';

INSERT INTO points_labelannotation (annotation_id, position, label, label_key,
    collection_method, points, count, seconds)
SELECT p.id, k, 'object ' || k || ' of ' || p.id, 'object ' || k || ' of ' || p.id,
       CASE WHEN k %% 2 = 0 THEN 'counting' ELSE 'pointing' END,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'x', round((random() * 100)::numeric, 2),
                 'y', round((random() * 100)::numeric, 2))), '[]'::jsonb)
        FROM generate_series(1, (p.id + k) %% 6) AS q WHERE q > 0 AND p.id > 0),
       (p.id + k) %% 6, 2.5
FROM points_pointsannotation p, generate_series(0, %(per)s - 1) AS k;
"""

WORDS = "a red kite above the grey harbour with three boats and a lighthouse on the left "
CAP = """
CREATE TEMP TABLE bench_cap AS
SELECT i.id AS image_id, row_number() OVER (ORDER BY i.id) AS n
FROM catalog_image i ORDER BY i.id LIMIT %(rows)s;

INSERT INTO work_workitem (campaign_id, image_id, open_slots, done_count, created_at)
SELECT c.id, b.image_id, 0, 1, now() FROM bench_cap b, work_campaign c
WHERE c.name = 'bench cap';

INSERT INTO work_assignment (item_id, annotator_id, status, started_at, submitted_at,
                             active_seconds, review_reason, skip_reason)
SELECT w.id, (SELECT min(id) FROM accounts_user) + (w.id %% 50), 'accepted', now(), now(),
       95, '', ''
FROM work_workitem w JOIN work_campaign c ON c.id = w.campaign_id WHERE c.name = 'bench cap';

INSERT INTO captions_recording (assignment_id, annotator_id, campaign_id, image_id,
    storage_key, mime_type, size_bytes, sha256, duration_seconds, idempotency_key, status,
    stage_started_at, attempts, failure_reason, created_at, updated_at)
SELECT s.id, s.annotator_id, w.campaign_id, w.image_id, 'audio/' || s.id || '.webm',
       'audio/webm', 400000, md5(s.id::text), 95.0, 'bench-' || s.id, 'done', now(), 1, '',
       now(), now()
FROM work_assignment s JOIN work_workitem w ON w.id = s.item_id
JOIN work_campaign c ON c.id = w.campaign_id WHERE c.name = 'bench cap';

INSERT INTO captions_transcript (recording_id, text, language, segments, words, model_name,
                                 settings, flagged, flag_reasons, created_at)
SELECT r.id, 'um so ' || repeat(%(words)s, 8) || r.id, 'en', '[]', '[]', 'tiny.en', '{}',
       false, '[]', now()
FROM captions_recording r;

INSERT INTO captions_imagesummary (campaign_id, image_id, status, text, prompt_version,
    model_name, llm_attempts, used_fallback, flagged, flag_reasons, stage_started_at,
    attempts, failure_reason, created_at, updated_at)
SELECT r.campaign_id, r.image_id, 'done', 'The image shows ' || repeat(%(words)s, 7) || r.id,
       'v1', 'rules', 0, false, false, '[]', now(), 1, '',
       CASE WHEN b.n > %(old)s THEN %(new_day)s::timestamptz ELSE %(old_day)s::timestamptz END,
       now()
FROM captions_recording r JOIN bench_cap b ON b.image_id = r.image_id;
"""


def _generate(rows: int, small: int) -> None:
    from django.db import connection

    annotations = rows // LABELS_PER_ANNOTATION
    with connection.cursor() as cur:
        cur.execute(GENERATE, {"images": max(rows, annotations)})
        cur.execute(
            POINTS,
            {
                "annotations": annotations,
                "old": annotations - small // LABELS_PER_ANNOTATION,
                "new_day": NEW_DAY,
                "old_day": OLD_DAY,
                "per": LABELS_PER_ANNOTATION,
            },
        )
        cur.execute(
            CAP,
            {
                "rows": rows,
                "old": rows - small,
                "new_day": NEW_DAY,
                "old_day": OLD_DAY,
                "words": WORDS,
            },
        )
        cur.execute("ANALYZE")


def _child(mode: str, dataset: str, since: str | None, db: str) -> dict[str, Any]:
    """One measurement in this (fresh) process; prints a JSON line."""
    _setup(db)
    from django.db import connection

    from annotator_app.exports import services
    from annotator_app.exports.sources import source_get
    from annotator_app.exports.sources.base import ExportRequest

    result: dict[str, Any] = {"mode": mode, "dataset": dataset, "since": since}
    if mode == "copy":
        source: Any = source_get(dataset)
        request = ExportRequest(dataset=dataset, since=services.parse_since(since))
        statement = source.copy_sql(request)

        class Discard:
            size = 0

            def write(self, data: bytes) -> int:
                self.size += len(data)
                return len(data)

        with connection.cursor() as cur:
            cur.copy_expert(statement, Discard())  # warm the cache
            sink = Discard()
            began = time.perf_counter()
            cur.copy_expert(statement, sink)
            result["seconds"] = time.perf_counter() - began
            result["bytes"] = sink.size
    else:
        # Warm: the first use of the cache client and pyarrow's pandas shim import
        # modules for seconds on a loaded machine; that is start-up, not export time.
        import pandas  # noqa: F401
        from django.core.cache import cache

        cache.get("export-bench-warm-up")
        with tempfile.TemporaryDirectory(prefix="pixmo-export-bench-") as tmp:
            export = services.export_create(dataset=dataset, since=since)
            began = time.perf_counter()
            done = services.export_run(export_id=export.pk, out=str(Path(tmp) / "out"))
            result["seconds"] = time.perf_counter() - began
            result["rows"] = done.rows_done
            manifest = done.manifest or {}
            result["bytes"] = sum(s["bytes"] for s in manifest.get("shard_details", []))
            result["shards"] = len(manifest.get("shards", []))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return result


def _run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--datasets", nargs="+", default=["points", "cap"])
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, dataset, since, db = args.child
        _child(mode, dataset, None if since == "-" else since, db)
        return
    small, large = sorted(args.rows)
    db = f"pixmo_bench_{secrets.token_hex(4)}"
    _setup("postgres")
    import psycopg2
    from django.core.management import call_command
    from django.db import connections
    from psycopg2 import sql

    admin = psycopg2.connect(urlunsplit(urlsplit(BASE_URL)._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    results: list[dict[str, Any]] = []
    try:
        from django.conf import settings

        connections.close_all()
        settings.DATABASES["default"]["NAME"] = db
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        _generate(large, small)
        print(
            f"generated {large} points and {large} cap rows in {time.perf_counter() - began:.0f} s"
        )
        connections.close_all()
        load = os.getloadavg()[0]
        for dataset in args.datasets:
            for size, since in ((small, SINCE), (large, "-")):
                copy = _run_child("copy", dataset, since, db)
                export = _run_child("export", dataset, since, db)
                row = {
                    "dataset": dataset,
                    "rows": export["rows"],
                    "target_rows": size,
                    "export_seconds": round(export["seconds"], 2),
                    "copy_seconds": round(copy["seconds"], 2),
                    "ratio": round(export["seconds"] / copy["seconds"], 2),
                    "rows_per_second": round(export["rows"] / export["seconds"]),
                    "peak_rss_mb": round(export["peak_rss_mb"], 1),
                    "shard_mb": round(export["bytes"] / 1e6, 1),
                    "copy_mb": round(copy["bytes"] / 1e6, 1),
                }
                results.append(row)
                print(
                    f"{dataset:6} {row['rows']:>9} rows: export {row['export_seconds']:7.2f} s "
                    f"({row['rows_per_second']:>7} rows/s), COPY {row['copy_seconds']:6.2f} s, "
                    f"ratio {row['ratio']:.2f}, peak RSS {row['peak_rss_mb']:.0f} MB, "
                    f"shards {row['shard_mb']} MB"
                )
        for dataset in args.datasets:
            rss = [r["peak_rss_mb"] for r in results if r["dataset"] == dataset]
            print(f"{dataset}: peak RSS {large} / {small} = {rss[1] / rss[0]:.2f}")
        print(
            json.dumps(
                {"load_avg_start": load, "load_avg_end": os.getloadavg()[0], "results": results}
            )
        )
    finally:
        connections.close_all()
        if not args.keep:
            with admin.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
        admin.close()


if __name__ == "__main__":
    main()
