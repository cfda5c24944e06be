"""Image-token ids come from the checkpoint, never from an assumed order.

Released tokenizers do not agree on where `<im_start>`, `<im_end>`, `<im_patch>` and
`<im_col>` sit after the base vocabulary (vLLM's Molmo code, for one, expects end, col,
patch, start). Tiny official-layout folders are written here with tokenizers that order
the tokens differently (and one that puts them inside the text vocabulary): the loader
must read the ids by string, the preprocessor must lay images out with them, the model
must place features on the right `<im_patch>` rows, and generation must never emit them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_service import checkpoint, data
from model_service.config import ConfigError, ImageTokenIds, TokenizerConfig, VisionConfig
from model_service.model import MolmoModel
from model_service.presets import get_preset
from model_service.tokenizer import load_tokenizer
from tests.model_service.test_checkpoint import randomised, write_official_folder, write_tokenizer

CFG = get_preset("debug")
V = CFG.llm.vocab_size  # 257 embedding rows; the official configs below say 250 are real

ORDERS = {
    "molmo": ImageTokenIds(im_start=V, im_end=V + 1, im_patch=V + 2, im_col=V + 3),
    "vllm": ImageTokenIds(im_start=V + 3, im_end=V, im_patch=V + 2, im_col=V + 1),
    "late": ImageTokenIds(im_start=V + 40, im_end=V + 7, im_patch=V + 99, im_col=V + 5),
    # inside the text vocabulary: these rows are scored by the head and must be masked
    "inside": ImageTokenIds(im_start=240, im_end=241, im_patch=242, im_col=243),
}


def official_cfg(ids: ImageTokenIds, *, tied: bool = False):  # type: ignore[no-untyped-def]
    llm = dataclasses.replace(CFG.llm, output_vocab_size=V - 7, tie_embeddings=tied)
    connector = dataclasses.replace(CFG.connector, legacy_pad_mask_shift=True)
    tokenizer = dataclasses.replace(CFG.tokenizer, image_token_ids=ids)
    return dataclasses.replace(CFG, llm=llm, connector=connector, tokenizer=tokenizer)


def base() -> object:
    return dataclasses.replace(CFG, vision=VisionConfig(**dataclasses.asdict(CFG.vision)))


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (70, 100, 3), dtype=np.uint8)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_ids_follow_the_official_tokenizer(tmp_path: Path, order: str) -> None:
    ids = ORDERS[order]
    cfg = official_cfg(ids)
    ours = randomised(MolmoModel(cfg, seed=4))
    folder = tmp_path / "Molmo-order-0924"
    write_official_folder(folder, ours, cfg)
    loaded = checkpoint.load(folder, base=base())  # type: ignore[arg-type]

    assert loaded.config.tokenizer.image_token_ids == ids
    tok = loaded.tokenizer
    assert (tok.im_start_id, tok.im_end_id, tok.im_patch_id, tok.im_col_id) == (
        ids.im_start, ids.im_end, ids.im_patch, ids.im_col,
    )  # fmt: skip
    layout = loaded.preprocessor(image()).tokens
    assert layout[0] == ids.im_start and layout[-1] == ids.im_end
    assert set(layout.tolist()) == {ids.im_start, ids.im_end, ids.im_patch, ids.im_col}

    item = data.build_prompt(tok, loaded.preprocessor, image(), " User: w1 w2 Assistant:")
    batch = {k: v for k, v in data.collate([item], pad_id=tok.pad_id).items() if k != "labels"}
    with torch.no_grad():
        got = loaded.model(**batch)
        torch.testing.assert_close(got, ours(**batch))
    assert got.shape[-1] == V - 7  # the padded head rows are not scored


def test_image_tokens_inside_the_vocabulary_are_never_generated(tmp_path: Path) -> None:
    ids = ORDERS["inside"]
    cfg = official_cfg(ids)
    ours = randomised(MolmoModel(cfg, seed=5))
    with torch.no_grad():  # make <im_col> the head's favourite by far
        assert ours.lm_head is not None
        ours.lm_head.weight[ids.im_col] = ours.llm.norm.weight.sign() * 50.0
    folder = tmp_path / "Molmo-inside-0924"
    write_official_folder(folder, ours, cfg)
    loaded = checkpoint.load(folder, base=base())  # type: ignore[arg-type]
    tok = loaded.tokenizer
    item = data.build_prompt(tok, loaded.preprocessor, image(1), " User: w3 Assistant:")
    batch = data.collate([item], pad_id=tok.pad_id)
    with torch.no_grad():
        assert (
            int(loaded.model(**{k: v for k, v in batch.items() if k != "labels"})[0, -1].argmax())
            == ids.im_col
        )
    out = loaded.model.generate(batch, max_new_tokens=8, eos_id=tok.eos_id)[0]
    assert out and not set(out) & set(ids.as_dict().values())


def test_native_checkpoint_writes_its_ids(tmp_path: Path) -> None:
    ids = ORDERS["vllm"]
    cfg = dataclasses.replace(
        CFG, tokenizer=dataclasses.replace(CFG.tokenizer, image_token_ids=ids)
    )
    model = randomised(MolmoModel(cfg, seed=6))
    checkpoint.save(tmp_path / "ck", model, cfg)
    written = json.loads((tmp_path / "ck" / "config.json").read_text())["tokenizer"]
    assert written["image_token_ids"] == ids.as_dict()
    loaded = checkpoint.load(tmp_path / "ck")
    assert loaded.tokenizer.im_patch_id == ids.im_patch == V + 2
    assert loaded.tokenizer.im_start_id == ids.im_start == V + 3
    # A config written before the ids were saved gets Molmo's training order.
    del written["image_token_ids"]
    old = TokenizerConfig(**written)
    assert old.image_ids == ImageTokenIds.after_base(V)


def test_a_tokenizer_with_some_image_tokens_missing_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    write_tokenizer(folder, {"im_start": V, "im_end": V + 1, "im_patch": V + 2})
    cfg = TokenizerConfig(kind="hf", path=str(folder), base_vocab_size=V)
    with pytest.raises(ValueError, match="<im_col>"):
        load_tokenizer(cfg)


def test_config_and_tokenizer_that_disagree_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    write_tokenizer(folder, ORDERS["vllm"].as_dict())
    cfg = TokenizerConfig(kind="hf", path=str(folder), base_vocab_size=V)  # Molmo order
    with pytest.raises(ValueError, match="image token ids"):
        load_tokenizer(cfg)


def test_invalid_image_ids_are_refused() -> None:
    same = ImageTokenIds(im_start=V, im_end=V, im_patch=V + 2, im_col=V + 3)
    with pytest.raises(ConfigError, match="distinct"):
        TokenizerConfig(base_vocab_size=V, image_token_ids=same)
    far = ImageTokenIds(im_start=V, im_end=V + 1, im_patch=V + 500, im_col=V + 3)
    with pytest.raises(ConfigError, match="embedding rows"):
        TokenizerConfig(base_vocab_size=V, image_token_ids=far)
