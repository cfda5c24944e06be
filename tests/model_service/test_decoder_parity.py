"""The decoder runs transformers' layers piecewise (model.MolmoModel._block) so that packed
sequences get a segment mask and residual dropout hits response tokens only. That leans on
transformers internals (the layer's attribute names, the norm placement, the attention
call's keywords), so every supported family is checked here against the plain
transformers forward of the same weights: full logits, and greedy decoding through our
KV cache. An upgrade of transformers that changes any of it fails here, not silently."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model_service.model import MolmoModel, hf_decoder_config
from model_service.presets import get_preset

CFG = get_preset("debug")
ARCHS = {
    "llama": {},
    "qwen2": {"n_kv_heads": 2},
    "olmo": {},
    "olmo2": {},
    "olmoe": {"intermediate_size": 32, "n_experts": 4, "experts_per_token": 2},
}


def pair(arch: str) -> tuple[MolmoModel, torch.nn.Module]:
    """Our model and a transformers *ForCausalLM holding the same decoder weights."""
    from transformers import AutoModelForCausalLM

    llm = dataclasses.replace(CFG.llm, arch=arch, **ARCHS[arch])  # type: ignore[arg-type]
    cfg = dataclasses.replace(CFG, llm=llm)
    ours = MolmoModel(cfg, seed=11).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # norms too: weights of exactly one would hide a misplaced norm
        for p in ours.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ref = AutoModelForCausalLM.from_config(hf_decoder_config(cfg.llm), attn_implementation="sdpa")
    ref.model.load_state_dict(ours.llm.state_dict(), strict=True)
    assert ours.lm_head is not None
    with torch.no_grad():
        ref.lm_head.weight.copy_(ours.lm_head.weight)
    return ours, ref.eval()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_decoder_matches_plain_transformers(arch: str) -> None:
    ours, ref = pair(arch)
    ids = torch.randint(0, 256, (2, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(input_ids=ids).logits
        got = ours(ids)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert want.std() > 0.1  # the weights are not trivial
        greedy = ref.generate(
            ids, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0
        )[:, ids.shape[1] :]
    ours_greedy = ours.generate({"input_ids": ids}, max_new_tokens=6, eos_id=-1)
    assert ours_greedy == greedy.tolist()
