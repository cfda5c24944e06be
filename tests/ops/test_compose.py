"""docker-compose.yml is valid and has no default secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "pixmo.example.org", "POSTGRES_PASSWORD": "pw"}


def _compose_config(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose")
    # An empty env file keeps a developer's own .env out of the check.
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    env.update(variables)
    return subprocess.run(
        [binary, "--env-file", str(empty_env), "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid(tmp_path: Path):
    result = _compose_config(tmp_path, **REQUIRED)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_needs_every_secret_from_the_environment(tmp_path: Path, name: str):
    variables = {k: v for k, v in REQUIRED.items() if k != name}
    result = _compose_config(tmp_path, **variables)
    assert result.returncode != 0
    assert name in result.stderr


def _services(tmp_path: Path, *profiles: str) -> dict[str, dict[str, object]]:
    import yaml

    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED} | REQUIRED
    flags = [arg for p in profiles for arg in ("--profile", p)]
    result = subprocess.run(
        [binary, "--env-file", str(empty_env), "-f", "docker-compose.yml", *flags, "config"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    services: dict[str, dict[str, object]] = yaml.safe_load(result.stdout)["services"]
    return services


def _command(service: dict[str, object]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(map(str, command))  # type: ignore[arg-type]


def _gpus(service: dict[str, object]) -> list[dict[str, object]]:
    return service["deploy"]["resources"]["reservations"]["devices"]  # type: ignore[index, no-any-return]


def test_model_services_run_the_model_service_entry_points_on_gpus(tmp_path: Path) -> None:
    services = _services(tmp_path, "train", "vllm")
    serve = services["model-service"]
    assert "python -m model_service.serve --host 0.0.0.0 --port 8001" in _command(serve)
    assert serve["environment"]["MODEL_CHECKPOINT"]  # type: ignore[index]
    assert "MODEL_SERVICE_TOKEN" in serve["environment"]  # type: ignore[operator]
    assert "python -m model_service.serve --llm" in _command(services["llm"])
    trainer = services["trainer"]
    assert "-m model_service.train" in _command(trainer) and "--data /exports/" in _command(trainer)
    vllm = _command(services["vllm"])
    for flag in (
        "--trust-remote-code",
        "--dtype bfloat16",
        "--limit-mm-per-prompt",
        "--max-model-len 4096",
    ):
        assert flag in vllm
    for name in ("model-service", "trainer", "vllm"):
        [device] = _gpus(services[name])
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert trainer["profiles"] == ["train"] and services["vllm"]["profiles"] == ["vllm"]


def test_training_runs_from_the_admin_have_a_gpu_worker(tmp_path: Path) -> None:
    worker = _services(tmp_path)["worker-gpu"]
    assert "--queues gpu" in _command(worker) and "--concurrency 1" in _command(worker)
    [device] = _gpus(worker)
    assert device["capabilities"] == ["gpu"]
    env = worker["environment"]
    assert (env["TRAINING_RUNS_DIR"], env["TRAINING_EXPORT_ROOTS"]) == ("/runs", "/exports")  # type: ignore[index]
    volumes = " ".join(map(str, worker["volumes"]))  # type: ignore[call-overload]
    assert "runs:/runs:rw" in volumes and "exports:/exports:ro" in volumes
