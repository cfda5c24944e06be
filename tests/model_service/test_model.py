"""MolmoModel on the tiny `debug` preset: forward/backward, overfitting one batch, the
segment mask, image-feature placement errors, residual dropout, legacy pad masks,
KV-cached greedy generation; one slow check of the SmolLM2 decoder against transformers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model_service.model import MolmoModel
from model_service.preprocess import ImagePreprocessor
from model_service.presets import get_preset
from model_service.tokenizer import load_tokenizer

CFG = get_preset("debug")
TOK = load_tokenizer(CFG.tokenizer)
PRE = ImagePreprocessor(CFG.preprocess, TOK)


@pytest.fixture(scope="module")
def model() -> MolmoModel:
    m = MolmoModel(CFG, seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # pad_embed starts at zero and 0.02-std weights shrink features
        m.pad_embed.normal_(std=0.5, generator=g)
        for p in [*m.pool.parameters(), *m.projector.parameters()]:
            p.normal_(std=0.3, generator=g)
    return m.eval()


def example(h: int, w: int, *texts: str, seed: int = 0) -> dict[str, np.ndarray]:
    """[BOS] image text1 text2 ...; image is segment 0, text k is segment k."""
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = PRE(img)
    ids, seg, pos = [TOK.bos_id, *x.tokens.tolist()], [0] * (1 + len(x.tokens)), []
    pos = list(range(len(ids)))
    for k, text in enumerate(texts, start=1):
        t = TOK.encode(text)
        ids += t
        seg += [k] * len(t)
        pos += list(range(len(x.tokens) + 1, len(x.tokens) + 1 + len(t)))  # restart per text
    idx = np.where(x.pooled_index >= 0, x.pooled_index + 1, -1)
    return {
        "ids": ids,
        "seg": seg,
        "pos": pos,
        "crops": x.crops,
        "masks": x.patch_masks,
        "idx": idx,
    }


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Right-pad tokens, zero-pad crops (mask -1), as the data module does."""
    b, length = len(examples), max(len(e["ids"]) for e in examples)
    n, p, d = max(e["crops"].shape[0] for e in examples), *examples[0]["crops"].shape[1:]
    out = {
        "input_ids": torch.full((b, length), TOK.pad_id),
        "position_ids": torch.zeros(b, length, dtype=torch.long),
        "segment_ids": torch.full((b, length), -1),
        "images": torch.zeros(b, n, p, d),
        "image_masks": torch.full((b, n, p), -1.0),
        "image_input_idx": torch.full((b, n, examples[0]["idx"].shape[1]), -1),
    }
    for i, e in enumerate(examples):
        k, c = len(e["ids"]), e["crops"].shape[0]
        out["input_ids"][i, :k] = torch.tensor(e["ids"])
        out["position_ids"][i, :k] = torch.tensor(e["pos"])
        out["segment_ids"][i, :k] = torch.tensor(e["seg"])
        out["images"][i, :c] = torch.from_numpy(e["crops"])
        out["image_masks"][i, :c] = torch.from_numpy(e["masks"])
        out["image_input_idx"][i, :c] = torch.from_numpy(e["idx"])
    return out


def test_forward_backward_with_padded_crops() -> None:
    m = MolmoModel(CFG, seed=0).train()
    batch = collate([example(70, 100, " hello"), example(30, 30, " a longer caption", seed=1)])
    logits = m(**batch)
    assert logits.shape == (2, batch["input_ids"].shape[1], CFG.llm.n_logits)  # text only
    logits.logsumexp(-1).mean().backward()
    for name in ("vit.patch_embed.weight", "pool.wq.weight", "projector.w2.weight"):
        grad = m.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.slow  # trains or decodes on CPU: 11-170 s on 2 loaded cores
def test_loss_falls_when_overfitting_one_batch() -> None:
    m = MolmoModel(CFG, seed=0).train()
    batch = collate([example(70, 100, " the cat sat")])
    labels = batch["input_ids"].roll(-1, dims=1)
    labels[:, -1] = -100
    labels[labels >= TOK.base_vocab_size] = -100  # image tokens are never targets
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(m(**batch).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_logits_at_gives_the_full_logits_of_those_positions_only(model: MolmoModel) -> None:
    batch = collate([example(70, 100, " hello there"), example(30, 30, " a cat", seed=1)])
    where = batch["segment_ids"] > 0  # the text positions of both rows
    with torch.no_grad():
        full = model(**batch)
        picked = model(**batch, logits_at=where)
    assert picked.shape == (int(where.sum()), CFG.llm.n_logits)
    torch.testing.assert_close(picked, full[where], rtol=0, atol=1e-5)


def test_annotation_cannot_see_other_annotation(model: MolmoModel) -> None:
    a = collate([example(70, 100, " first note", " second")])
    b = collate([example(70, 100, " FIRST NOTE", " second")])
    seg = a["segment_ids"][0]
    with torch.no_grad():
        la, lb = model(**a)[0], model(**b)[0]
    torch.testing.assert_close(la[seg == 2], lb[seg == 2], rtol=0, atol=1e-6)  # blind to 1
    torch.testing.assert_close(la[seg == 0], lb[seg == 0], rtol=0, atol=1e-6)
    assert not torch.allclose(la[seg == 1], lb[seg == 1])


def test_image_features_reach_the_logits(model: MolmoModel) -> None:
    a = collate([example(70, 100, " x", seed=0)])
    b = collate([example(70, 100, " x", seed=5)])
    with torch.no_grad():
        assert not torch.allclose(model(**a)[0, -1], model(**b)[0, -1])


def test_feature_count_mismatch_is_a_clear_error(model: MolmoModel) -> None:
    batch = collate([example(70, 100, " x")])
    batch["input_ids"][0, 5] = ord("z")  # an <im_patch> that receives a feature is gone
    with pytest.raises(ValueError, match="do not fit"):
        model(**batch)
    batch = collate([example(70, 100, " x")])
    batch["image_input_idx"][0, 0, 0] = 10_000
    with pytest.raises(ValueError, match="past the sequence end"):
        model(**batch)


def test_residual_dropout_only_on_response_tokens() -> None:
    cfg = dataclasses.replace(CFG, llm=dataclasses.replace(CFG.llm, residual_dropout=0.5))
    m = MolmoModel(cfg, seed=0)
    batch = collate([example(70, 100, " some text")])
    with torch.no_grad():
        reference = m.eval()(**batch)
        m.train()
        none = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
        torch.testing.assert_close(m(**batch, response_mask=none), reference)
        some = batch["segment_ids"] == 1
        out = m(**batch, response_mask=some)
    first = int(some[0].nonzero()[0])
    torch.testing.assert_close(out[0, :first], reference[0, :first])  # causal: before is clean
    assert not torch.allclose(out[0, first:], reference[0, first:])


@pytest.mark.slow  # trains or decodes on CPU: 11-170 s on 2 loaded cores
def test_legacy_pad_mask_shift_uses_next_crop_masks(model: MolmoModel) -> None:
    batch = collate([example(40, 160, " x"), example(160, 40, " y", seed=2)])
    real = batch["image_masks"][:, :, 0] != -1  # [B, N]
    g = torch.Generator().manual_seed(0)  # distinct masks per crop: all/partly/not padded
    levels = torch.tensor([0.0, 0.5, 1.0])[
        torch.randint(0, 3, batch["image_masks"].shape, generator=g)
    ]
    batch["image_masks"] = torch.where(real[..., None], levels, batch["image_masks"])
    legacy_cfg = dataclasses.replace(
        CFG, connector=dataclasses.replace(CFG.connector, legacy_pad_mask_shift=True)
    )
    legacy = MolmoModel(legacy_cfg)
    legacy.load_state_dict(model.state_dict())
    legacy.eval()
    shifted = dict(batch)
    masks = batch["image_masks"]
    shifted["image_masks"] = torch.cat([masks[:, 1:], torch.full_like(masks[:, :1], -1)], dim=1)
    for i in range(2):  # the last real crop got -1, which counts as "partly padded"
        shifted["image_masks"][i, int(real[i].sum()) - 1] = 0.5
    with torch.no_grad():
        got = legacy.encode_images(batch["images"], batch["image_masks"])
        want = model.encode_images(shifted["images"], shifted["image_masks"])
        plain = model.encode_images(batch["images"], batch["image_masks"])
    torch.testing.assert_close(got[real], want[real])
    assert not torch.allclose(got[real], plain[real])


@pytest.mark.slow  # trains or decodes on CPU: 11-170 s on 2 loaded cores
def test_generate_matches_uncached_greedy_and_handles_padding(model: MolmoModel) -> None:
    prompts = [example(70, 100, " User: hi Assistant:"), example(30, 60, " Q:", seed=3)]
    batch = collate(prompts)
    got = model.generate(batch, max_new_tokens=6, eos_id=TOK.eos_id)
    for i, e in enumerate(prompts):
        single = collate([e])
        ids = single["input_ids"]
        want: list[int] = []
        for _ in range(6):
            step = dict(single)
            step["input_ids"] = ids
            step["position_ids"] = torch.cat(
                [
                    single["position_ids"],
                    single["position_ids"][:, -1:] + torch.arange(1, 1 + len(want))[None],
                ],
                1,
            )
            step["segment_ids"] = torch.full_like(ids, 1)
            step["segment_ids"][:, : single["segment_ids"].shape[1]] = single["segment_ids"]
            with torch.no_grad():
                token = int(model(**step)[0, -1, : TOK.base_vocab_size].argmax())
            if token == TOK.eos_id:
                break
            want.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        assert got[i] == want


@pytest.mark.slow
def test_small_cpu_decoder_matches_transformers_smollm2() -> None:
    from transformers import AutoModelForCausalLM

    from model_service.tokenizer import smollm2_gguf_path

    cfg = get_preset("small-cpu")
    path = smollm2_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    model = MolmoModel(cfg)
    model.copy_decoder_from(ref)
    tok = load_tokenizer(cfg.tokenizer)
    ids = torch.tensor([tok.encode(" User: What is in the image? Assistant:")])
    with torch.no_grad():
        ours = model.eval()(ids)[..., : cfg.llm.vocab_size]
        theirs = ref.eval()(ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert tok.decode([*tok.encode(" hello world"), tok.eos_id, tok.im_patch_id]) == " hello world"
