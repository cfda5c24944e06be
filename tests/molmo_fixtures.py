"""Molmo serving fixtures: a debug checkpoint that has learnt a few answers, and the real
model server running it. For any test that needs an OpenAI-compatible captioner
(MODEL_SERVICE_URL), e.g. the AMA loop:

- `molmo_checkpoint` (session): the `debug` preset trained by the real trainer
  (model_service.train.run) until it answers the four `EXAMPLES` exactly: a caption and a
  pointing answer for each of two drawn images (`draw_example`), with the same questions
  for both images, so a right answer needs the image. The result is cached under
  var/test-cache/ keyed by a hash of model_service's sources and this recipe: only the
  first session on a machine trains (about 100 steps; seconds on a quiet machine).
- `molmo_server` (session): `python -m model_service.serve --checkpoint ...` on a free
  port, allowed to fetch images from 127.0.0.1 (tests serve their own images); yields a
  `MolmoServer` with `.base` (http://127.0.0.1:PORT), `.url` (base + "/v1") and `.name`.
- `png_data_url(image)`: a data: URL for an `image_url` part.

    def test_captions(molmo_server):
        client = openai.OpenAI(base_url=molmo_server.url, api_key="unused")
        ...
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PIXMO_TEST_CACHE") or REPO / "var" / "test-cache")
START_TIMEOUT = 300

# (image, question, answer): both images get both questions.
EXAMPLES = (
    ("square", "Describe this image.", "A white square on red."),
    ("square", "Point to the shape.", '<point x="24.0" y="50.0" alt="shape">shape</point>'),
    ("disc", "Describe this image.", "A white disc on blue."),
    ("disc", "Point to the shape.", '<point x="74.0" y="50.0" alt="shape">shape</point>'),
)
RECIPE = {"steps": 100, "batch_size": 4, "lr_llm": 3e-3, "lr_vision": 1e-2, "warmup": 3, "seed": 0}


def draw_example(kind: str) -> Image.Image:
    """96x64: a white square at x 12..35 on red, or a white disc at x 60..83 on blue (both
    y 20..43, so the centres are at 24 % / 74 % of the width and 50 % of the height)."""
    background = (150, 20, 20) if kind == "square" else (20, 40, 160)
    image = Image.new("RGB", (96, 64), background)
    pen = ImageDraw.Draw(image)
    if kind == "square":
        pen.rectangle((12, 20, 35, 43), fill=(250, 250, 250))
    else:
        pen.ellipse((60, 20, 83, 43), fill=(250, 250, 250))
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def png_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _cache_key() -> str:
    """What the trained weights depend on: the model, data and trainer code, the recipe."""
    digest = hashlib.sha256(repr((EXAMPLES, RECIPE)).encode())
    sources = [
        *sorted((REPO / "model_service").glob("*.py")),
        *sorted((REPO / "model_service" / "train").glob("*.py")),
        REPO / "pipelines" / "molmo_text.py",
    ]
    for path in sources:
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _Examples:
    """The four examples as trainer items (the data module's packing)."""

    def __init__(self, tokenizer: Any, preprocessor: Any) -> None:
        self.tokenizer, self.preprocessor = tokenizer, preprocessor

    def __len__(self) -> int:
        return len(EXAMPLES)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        from model_service import data

        kind, question, answer = EXAMPLES[index]
        pixels = np.asarray(draw_example(kind))
        segment = data.turns_segment(self.tokenizer, [(question, answer)])
        return data.pack(self.tokenizer, self.preprocessor(pixels), [segment], 512)


def _train(run_dir: Path) -> None:
    from model_service import train
    from model_service.preprocess import ImagePreprocessor
    from model_service.presets import get_preset
    from model_service.tokenizer import load_tokenizer
    from model_service.train.config import TrainConfig

    model_config = get_preset("debug")
    tokenizer = load_tokenizer(model_config.tokenizer)
    dataset = _Examples(tokenizer, ImagePreprocessor(model_config.preprocess, tokenizer))
    vision, llm, warmup = RECIPE["lr_vision"], RECIPE["lr_llm"], RECIPE["warmup"]
    cfg = TrainConfig(
        stage="caption",  # a fresh model: every part trains from the first step
        preset="debug",
        data=["in-memory examples"],
        out=str(run_dir),
        steps=int(RECIPE["steps"]),
        batch_size=int(RECIPE["batch_size"]),
        seq_len=512,
        seed=int(RECIPE["seed"]),
        lr={"vit": vision, "connector": vision, "llm": llm},
        warmup={"vit": int(warmup), "connector": int(warmup), "llm": int(warmup)},
        residual_dropout=0.0,
        log_every=10,
    )
    train.run(cfg, model_config, dataset=dataset)


def _check_answers(checkpoint_dir: Path) -> None:
    from model_service import checkpoint, data
    from pipelines import molmo_text

    loaded = checkpoint.load(checkpoint_dir)
    tok = loaded.tokenizer
    for kind, question, answer in EXAMPLES:
        pixels = np.asarray(draw_example(kind))
        item = data.build_prompt(tok, loaded.preprocessor, pixels, molmo_text.chat_prompt(question))
        out = loaded.model.generate(data.collate([item], pad_id=tok.pad_id), 80, tok.eos_id)[0]
        got = tok.decode(out).strip()
        if got != answer:
            pytest.fail(f"the debug checkpoint did not learn {kind}/{question!r}: {got!r}")


@pytest.fixture(scope="session")
def molmo_checkpoint() -> Path:
    """A trained debug checkpoint folder (cached across sessions, see the module doc)."""
    target = CACHE / f"molmo-debug-{_cache_key()}"
    if (target / "checkpoint" / "model.safetensors").exists():
        return target / "checkpoint"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f".{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _train(tmp)
    _check_answers(tmp / "checkpoint")
    try:
        tmp.rename(target)
    except OSError:  # another session finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "checkpoint"


@dataclass(frozen=True)
class MolmoServer:
    base: str  # http://127.0.0.1:PORT
    name: str  # the model id
    checkpoint: Path
    log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/v1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m model_service.serve ARGS --port FREE`; wait for /health."""
    port = free_port()
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_service.serve", *args, "--port", str(port)],
            cwd=REPO,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the model server exited:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, base
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail(f"the model server did not answer /health:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def molmo_server(
    molmo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MolmoServer]:
    """The real model server on the trained debug checkpoint (model id "molmo-debug")."""
    log_path = tmp_path_factory.mktemp("molmo") / "serve.log"
    args = [
        "--checkpoint", str(molmo_checkpoint), "--name", "molmo-debug",
        "--allow-fetch-from", "127.0.0.1", "--max-image-bytes", "200000",
        "--max-image-pixels", "1000000", "--threads", "2",
    ]  # fmt: skip
    proc, base = start_server(args, log_path, env={"MODEL_SERVICE_TOKEN": ""})
    try:
        yield MolmoServer(base, "molmo-debug", molmo_checkpoint, log_path)
    finally:
        stop_server(proc)
