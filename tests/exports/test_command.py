"""`manage.py export_pixmo`: the same engine from the command line, with a progress bar;
refusals name the problem; the sweeper fails exports whose worker died."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotator_app.exports import services
from annotator_app.exports.models import Export, ExportStatus
from tests.exports import helpers

pytestmark = pytest.mark.django_db


def test_command_writes_a_snapshot_and_records_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    camp = helpers.campaign("points", name="cli points")
    helpers.points_image(camp, helpers.stored_image(), [("dog", [(10.0, 20.0)]), ("cat", [])])
    out = io.StringIO()
    call_command(
        "export_pixmo",
        "points",
        "--out",
        str(tmp_path / "snap"),
        "--campaign",
        "cli points",
        "--full",
        stdout=out,
    )
    assert "2 rows in 1 shard(s)" in out.getvalue()
    assert "rows" in capsys.readouterr().err  # tqdm's bar went to stderr
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["variant"] == "full" and manifest["filters"]["campaign"] == camp.pk
    assert pq.read_table(tmp_path / "snap" / manifest["shards"][0]).num_rows == 2
    export = Export.objects.get()
    assert export.status == ExportStatus.DONE and export.location == str(tmp_path / "snap")


def test_command_refusals_name_the_problem(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("an earlier snapshot")
    with pytest.raises(CommandError, match="not an empty folder"):
        call_command("export_pixmo", "cap", "--out", str(taken), "--no-progress")
    assert (taken / "keep.txt").read_text() == "an earlier snapshot"
    with pytest.raises(CommandError, match="since"):
        call_command("export_pixmo", "cap", "--out", str(tmp_path / "x"), "--since", "June")
    with pytest.raises(CommandError, match="campaign"):
        call_command("export_pixmo", "cap", "--out", str(tmp_path / "x"), "--campaign", "nope")
    assert Export.objects.filter(status=ExportStatus.DONE).count() == 0


def test_sweeper_fails_exports_whose_worker_died(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_TIME_LIMIT = 60
    stuck = services.export_create(dataset="points")
    long_ago = timezone.now() - timedelta(seconds=600)
    Export.objects.filter(pk=stuck.pk).update(status=ExportStatus.RUNNING, started_at=long_ago)
    fresh = services.export_create(dataset="points")
    Export.objects.filter(pk=fresh.pk).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    )
    assert services.exports_sweep()["failed"] == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == ExportStatus.FAILED and "worker" in stuck.error
    assert fresh.status == ExportStatus.RUNNING
