"""Training from an export: input checks, the admin pages and who may use them, the
captioner choice, and the loss chart. The real trainer runs in test_training_worker.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from annotator_app.training import selectors, services
from annotator_app.training.chart import loss_chart_svg
from annotator_app.training.models import (
    CaptionerChoice,
    RunStatus,
    TrainedCheckpoint,
    TrainingRun,
)
from tests.training.helpers import write_cap_export

TRAIN_URL = "admin:training_trainingrun_train_from_export"


@pytest.fixture
def export(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.TRAINING_EXPORT_ROOTS = [tmp_path / "exports"]
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    return write_cap_export(tmp_path / "exports" / "cap-1")


def _request(export_dir: str, **overrides: object) -> services.RunRequest:
    fields: dict[str, object] = {
        "export_dir": export_dir, "stage": "caption", "preset": "debug",
        "steps": 4, "batch_size": 4, "seq_len": 160,
    }  # fmt: skip
    fields.update(overrides)
    return services.RunRequest(**fields)  # type: ignore[arg-type]


def _checkpoint(root: Path, name: str) -> TrainedCheckpoint:
    folder = root / name / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return services.checkpoint_register(path=folder, name=name, preset="debug", steps=4)


# --- the service ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_start_stores_a_queued_run_with_the_resolved_folder(export: Path, cast) -> None:
    run = services.training_run_start(
        request=_request(str(export / ".." / "cap-1")), created_by=cast.admin
    )
    assert (run.status, run.export_dir, run.total_steps) == (RunStatus.QUEUED, str(export), 4)
    assert run.created_by == cast.admin


def _break_manifest(export: Path) -> None:
    (export / "manifest.json").write_text("{not json")


def _drop_shard(export: Path) -> None:
    (export / "rows.jsonl").unlink()


def _escape_shard(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["shards"] = ["../../../etc/passwd"]
    (export / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("damage", "folder", "message"),
    [
        (None, "/etc", "outside the export roots"),
        (None, "{export}/../../../..", "outside the export roots"),
        (None, "{export}/images", "no manifest.json"),
        (_break_manifest, "{export}", "not readable JSON"),
        (_drop_shard, "{export}", "shard 'rows.jsonl' is missing"),
        (_escape_shard, "{export}", "is missing"),
        (None, "", "give a path"),
    ],
)
def test_bad_export_folders_are_refused_with_the_reason(
    export: Path, damage, folder: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    if damage is not None:
        damage(export)
    with pytest.raises(services.TrainingInputError, match=re.escape(message)):
        services.training_run_start(request=_request(folder.format(export=export)), created_by=None)
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stage": "sft"}, "starts from a checkpoint"),
        ({"stage": "rlhf"}, "stage 'rlhf'"),
        ({"preset": "../../bin/sh"}, "not a preset name"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"seq_len": 8}, "seq_len must be at least 16"),
    ],
)
def test_bad_settings_are_refused(export: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(services.TrainingInputError, match=re.escape(message)):
        services.training_run_start(request=_request(str(export), **overrides), created_by=None)
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_the_command_runs_the_trainer_with_a_warmup_that_fits(export: Path, tmp_path: Path) -> None:
    run = services.training_run_start(request=_request(str(export), steps=1000), created_by=None)
    command = services.training_command(run, tmp_path / "out")
    assert command[1:3] == ["-m", "model_service.train"]
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert flags["--data"] == str(export) and flags["--out"] == str(tmp_path / "out")
    assert (flags["--steps"], flags["--batch-size"], flags["--seq-len"]) == ("1000", "4", "160")
    assert float(flags["--warmup-scale"]) * services.LONGEST_RECIPE_WARMUP == pytest.approx(100)


@pytest.mark.django_db
def test_a_checkpoint_folder_without_weights_is_not_registered(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(services.TrainingInputError, match="is not a checkpoint"):
        services.checkpoint_register(path=tmp_path, name="x", preset="debug", steps=1)
    assert not TrainedCheckpoint.objects.exists()


# --- the AMA captioner's checkpoint -----------------------------------------------------------


@pytest.mark.django_db
def test_active_captioner_is_the_choice_else_the_newest(tmp_path: Path, cast) -> None:
    assert selectors.active_captioner_checkpoint() is None
    first = _checkpoint(tmp_path, "train-run-1")
    second = _checkpoint(tmp_path, "train-run-2")
    assert selectors.active_captioner_checkpoint() == second
    services.captioner_choose(checkpoint=first, chosen_by=cast.admin)
    assert selectors.active_captioner_checkpoint() == first
    services.captioner_choose(checkpoint=None, chosen_by=cast.admin)
    assert selectors.active_captioner_checkpoint() == second
    assert CaptionerChoice.objects.count() == 1


# --- admin pages and permissions ------------------------------------------------------------


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("who", [None, "owner", "reviewer"])
def test_only_admins_may_start_training(export: Path, cast, who: str | None) -> None:
    client = _client(None if who is None else getattr(cast, who))
    url = reverse(TRAIN_URL)
    assert client.get(url).status_code == 302  # to the admin login
    form = {"export_dir": str(export), "stage": "caption", "preset": "debug", "steps": 4,
            "batch_size": 4, "seq_len": 160}  # fmt: skip
    response = client.post(url, form)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_admin_starts_a_run_from_the_form(export: Path, cast) -> None:
    client = _client(cast.admin)
    page = client.get(reverse(TRAIN_URL), {"export_dir": str(export)})
    assert page.status_code == 200
    assert str(export) in page.content.decode() and "Start training" in page.content.decode()
    form = {"export_dir": str(export), "stage": "caption", "preset": "debug", "steps": 4,
            "batch_size": 4, "seq_len": 160}  # fmt: skip
    response = client.post(reverse(TRAIN_URL), form)
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:training_trainingrun_change", args=[run.id])
    assert (run.status, run.export_dir, run.created_by) == (
        RunStatus.QUEUED,
        str(export),
        cast.admin,
    )


@pytest.mark.django_db
def test_the_form_names_the_problem_and_writes_nothing(export: Path, cast) -> None:
    form = {"export_dir": "/etc", "stage": "caption", "preset": "debug", "steps": 4,
            "batch_size": 4, "seq_len": 160}  # fmt: skip
    response = _client(cast.admin).post(reverse(TRAIN_URL), form)
    assert response.status_code == 400
    assert "outside the export roots" in response.content.decode()
    response = _client(cast.admin).post(reverse(TRAIN_URL), {**form, "steps": "0"})
    assert response.status_code == 400
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_the_form_needs_the_csrf_token(export: Path, cast) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.admin)
    form = {"export_dir": str(export), "stage": "caption", "preset": "debug", "steps": 4,
            "batch_size": 4, "seq_len": 160}  # fmt: skip
    assert client.post(reverse(TRAIN_URL), form).status_code == 403
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_the_run_page_shows_progress_and_the_loss_chart(export: Path, cast) -> None:
    run = services.training_run_start(request=_request(str(export)), created_by=cast.admin)
    TrainingRun.objects.filter(id=run.id).update(
        status=RunStatus.RUNNING, step=3, loss=0.5, loss_history=[[1, 2.0], [2, 1.0], [3, 0.5]]
    )
    response = _client(cast.admin).get(reverse("admin:training_trainingrun_change", args=[run.id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "3 / 4" in body and "<svg" in body and "<polyline" in body
    assert "style=" not in body.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_admin_chooses_the_captioner_checkpoint(tmp_path: Path, cast) -> None:
    first = _checkpoint(tmp_path, "train-run-1")
    _checkpoint(tmp_path, "train-run-2")
    url = reverse("admin:training_trainedcheckpoint_changelist")
    action = {"action": "use_for_ama", "_selected_action": [first.id]}
    reviewer = _client(cast.reviewer).post(url, action)
    assert reviewer.status_code == 302 and "/admin/login/" in reviewer["Location"]
    assert selectors.active_captioner_checkpoint() != first
    assert _client(cast.admin).post(url, action).status_code == 302
    assert selectors.active_captioner_checkpoint() == first
    listing = _client(cast.admin).get(url).content.decode()
    assert "train-run-1" in listing and "train-run-2" in listing


# --- the chart -------------------------------------------------------------------------------


def test_loss_chart_draws_every_point_inside_the_frame() -> None:
    svg = str(loss_chart_svg([[1, 3.0], [2, 2.0], [5, 0.5]]))
    points = re.search(r'<polyline points="([^"]+)"', svg)
    assert points is not None
    xy = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(xy) == 3
    assert xy[0][0] < xy[1][0] < xy[2][0]  # later steps to the right
    assert xy[0][1] < xy[1][1] < xy[2][1]  # lower loss further down the page
    assert all(0 <= x <= 560 and 0 <= y <= 220 for x, y in xy)
    assert 'aria-label="Training loss from 3 at step 1 to 0.5 at step 5"' in svg
    assert "style" not in svg and "<script" not in svg


def test_loss_chart_without_points_says_so() -> None:
    assert "No loss reported yet" in str(loss_chart_svg([]))
    assert "<svg" in str(loss_chart_svg([[1, 2.0]]))  # a single point still draws


# --- starting from a P7 export snapshot ------------------------------------------------------


def _snapshot(folder: Path, **fields: object):  # type: ignore[no-untyped-def]
    from annotator_app.exports.models import Export, ExportStatus

    values: dict[str, object] = {"dataset": "cap", "format": "jsonl", "status": ExportStatus.DONE,
                                 "location": str(folder)}  # fmt: skip
    values.update(fields)
    return Export.objects.create(**values)


@pytest.mark.django_db
def test_the_export_list_action_opens_the_form_and_the_run_links_the_export(
    export: Path, cast
) -> None:
    snapshot = _snapshot(export)
    client = _client(cast.admin)
    picked = client.post(
        reverse("admin:exports_export_changelist"),
        {"action": "train_from_export", "_selected_action": [str(snapshot.id)]},
    )
    assert picked.status_code == 302 and f"export={snapshot.id}" in picked["Location"]
    page = client.get(picked["Location"]).content.decode()
    assert f'<option value="{snapshot.id}" selected>' in page
    form = {"export": str(snapshot.id), "stage": "caption", "preset": "debug", "steps": 4,
            "batch_size": 4, "seq_len": 160}  # fmt: skip
    assert client.post(reverse(TRAIN_URL), form).status_code == 302
    run = TrainingRun.objects.get()
    assert (run.export, run.export_dir) == (snapshot, str(export))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "running"}, "is running, not done"),
        ({"location": "s3://bucket/exports/x/"}, "not in a local folder"),
    ],
)
def test_unfinished_or_remote_snapshots_are_refused(
    export: Path, fields: dict[str, object], message: str
) -> None:
    snapshot = _snapshot(export, **fields)
    with pytest.raises(services.TrainingInputError, match=re.escape(message)):
        services.training_run_start(request=_request("", export=snapshot), created_by=None)
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_the_form_needs_a_snapshot_or_a_folder(export: Path, cast) -> None:
    form = {"stage": "caption", "preset": "debug", "steps": 4, "batch_size": 4, "seq_len": 160}
    response = _client(cast.admin).post(reverse(TRAIN_URL), form)
    assert response.status_code == 400
    assert "Choose an export snapshot or give an export folder" in response.content.decode()
    assert not TrainingRun.objects.exists()
