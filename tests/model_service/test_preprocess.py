"""Multi-crop preprocessing: tiling rule by hand-computed cases, shapes and token counts,
exact tiling of the resized image by the kept pooled features, masks and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from model_service.config import CLIP_MEAN, CLIP_STD, PreprocessConfig
from model_service.preprocess import ImagePreprocessor, select_tiling
from model_service.tokenizer import BytesTokenizer

TOK = BytesTokenizer()
CFG = PreprocessConfig()  # 336 px crops, 14 px patches, 12 crops, 4-patch margins
WINDOW, MARGIN = 224, 112


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("h", "w", "max_crops", "expected"),
    [
        # h'=368, w'=528: (2,3) scale min(1.217, 1.273) is the least upscaling; (2,4) ties
        # at 1.217 but comes later (more crops).
        (480, 640, 12, (2, 3)),
        # h'=w'=448: (2,2) and (2,3) both have scale 1.0; the tie goes to fewer crops.
        (560, 560, 12, (2, 2)),
        # h'=888, w'=188: (4,1) scale min(1.009, 1.19); (4,2) ties, comes later.
        (1000, 300, 12, (4, 1)),
        # h'=w'=224: 1x1 fits exactly (scale 1).
        (336, 336, 12, (1, 1)),
        # h'=w'=4888: every scale < 1, largest is 672/4888 for (3,3) (and later (3,4)).
        (5000, 5000, 12, (3, 3)),
        # Same image with the 36-crop eval setting: 6x6 gives 1344/4888.
        (5000, 5000, 36, (6, 6)),
        # Tiny image, both sides below the margins: falls back to a single crop.
        (50, 50, 12, (1, 1)),
        # Height below the margin: width alone decides, 9*224/1888 = 1.07 >= 1.
        (10, 2000, 12, (1, 9)),
        # Tall: h'=1488, w'=288: (7,2) scale min(1.054, 1.556); (7,1) is below 1 in width.
        (1600, 400, 14, (7, 2)),
    ],
)
def test_select_tiling_hand_computed(h: int, w: int, max_crops: int, expected: tuple) -> None:
    got = select_tiling(h, w, window=WINDOW, margin=MARGIN, max_crops=max_crops)
    assert got == expected


def expected_token_count(rows: int, cols: int) -> int:
    grid_h, grid_w = (rows * 16 + 8) // 2, (cols * 16 + 8) // 2
    return (2 + 12 * 13) + (2 + grid_h * (grid_w + 1))


SIZES = [(480, 640), (1000, 300), (300, 1000), (50, 50), (10, 2000), (2000, 10), (336, 336), (1, 1)]


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_shapes_and_token_counts(h: int, w: int) -> None:
    pre = ImagePreprocessor(CFG, TOK)
    out = pre(image(h, w))
    rows, cols = out.tiling
    assert rows * cols <= CFG.max_crops
    n = 1 + rows * cols
    assert out.crops.shape == (n, 576, 588) and out.crops.dtype == np.float32
    assert out.patch_masks.shape == (n, 576)
    assert out.pooled_index.shape == (n, 144) and out.pooled_index.dtype == np.int64
    assert len(out.tokens) == expected_token_count(rows, cols) == pre.n_image_tokens(h, w)
    # Every <im_patch> receives exactly one pooled feature, nothing else does.
    kept = np.sort(out.pooled_index[out.pooled_index >= 0])
    np.testing.assert_array_equal(kept, np.flatnonzero(out.tokens == TOK.im_patch_id))


def test_token_layout_global_block_first() -> None:
    out = ImagePreprocessor(CFG, TOK)(image(480, 640))
    row = [TOK.im_patch_id] * 12 + [TOK.im_col_id]
    global_block = [TOK.im_start_id, *(row * 12), TOK.im_end_id]
    assert out.tokens[: len(global_block)].tolist() == global_block
    hires = out.tokens[len(global_block) :]
    assert hires[0] == TOK.im_start_id and hires[-1] == TOK.im_end_id
    grid_w = (3 * 16 + 8) // 2  # tiling (2, 3)
    rows = hires[1:-1].reshape(-1, grid_w + 1)
    assert rows.shape[0] == (2 * 16 + 8) // 2
    assert (rows[:, -1] == TOK.im_col_id).all() and (rows[:, :-1] == TOK.im_patch_id).all()
    np.testing.assert_array_equal(out.pooled_index[0], 1 + np.arange(144) + np.arange(144) // 12)


@pytest.mark.parametrize(
    ("h", "w"),
    [
        (480, 640),
        pytest.param(1600, 400, marks=pytest.mark.slow),  # large images: seconds each
        pytest.param(700, 2000, marks=pytest.mark.slow),
        (900, 900),
    ],
)
def test_kept_features_tile_resized_image_once(h: int, w: int) -> None:
    """Place every kept pooled cell by crop geometry (crop (i, j) starts at pooled cell
    (i*8, j*8) of the resized image) and check the merged grid is covered exactly once,
    in row-major token order."""
    out = ImagePreprocessor(CFG, TOK)(image(h, w))
    rows, cols = out.tiling
    grid_h, grid_w = (rows * 16 + 8) // 2, (cols * 16 + 8) // 2
    seen = np.zeros((grid_h, grid_w), int)
    base = 2 + 12 * 13 + 1
    for i in range(rows):
        for j in range(cols):
            idx = out.pooled_index[1 + i * cols + j].reshape(12, 12)
            for r, c in zip(*np.nonzero(idx >= 0), strict=True):
                y, x = i * 8 + r, j * 8 + c
                seen[y, x] += 1
                assert idx[r, c] == base + y * (grid_w + 1) + x
    assert (seen == 1).all()


def test_single_tile_keeps_all_patches() -> None:
    out = ImagePreprocessor(CFG, TOK)(image(300, 300))
    assert out.tiling == (1, 1)
    assert (out.pooled_index >= 0).all()


def test_masks_and_black_padding_normalised() -> None:
    out = ImagePreprocessor(CFG, TOK)(np.full((100, 350, 3), 255, np.uint8))
    masks = out.patch_masks[0].reshape(24, 24)  # global crop: a 336 x 96 band from y=120
    assert (masks[0] == 0).all() and (masks[12] == 1).all()
    assert ((masks > 0) & (masks < 1)).any()  # rows cut by the band edge
    # Real pixel area = sum of fractions * patch area.
    assert masks.sum() * 14 * 14 == pytest.approx(336 * 96)
    padded = out.crops[0, 0].reshape(14, 14, 3)  # top-left patch is all padding
    black = (0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(padded, np.broadcast_to(black, (14, 14, 3)), rtol=1e-5)
    white = (1 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(out.crops[0, 12 * 24].reshape(14, 14, 3)[0, 0], white, rtol=1e-4)


def test_high_res_crops_are_overlapping_windows() -> None:
    """Neighbouring crops overlap by the two margins (8 patches = 112 px)."""
    out = ImagePreprocessor(CFG, TOK)(image(560, 560, seed=3))
    assert out.tiling == (2, 2)
    left = out.crops[1].reshape(24, 24, -1)
    right = out.crops[2].reshape(24, 24, -1)
    np.testing.assert_array_equal(left[:, 16:], right[:, :8])


def test_deterministic() -> None:
    pre = ImagePreprocessor(CFG, TOK)
    a, b = pre(image(333, 777)), pre(image(333, 777))
    for name in ("crops", "patch_masks", "tokens", "pooled_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImagePreprocessor(CFG, TOK)(np.zeros((10, 10, 3), np.float32))
