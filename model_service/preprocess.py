"""Molmo's overlap-and-resize multi-crop image preprocessing (spec §4), numpy + Pillow only.

One image becomes a global low-res crop (whole image, aspect kept, black padding) followed
by `rows x cols` overlapping high-res crops of a resized copy of the image. Each crop has a
margin of `overlap_margins` patches on every side; crops step by the window between the
margins, so the kept pooled features of all crops tile the resized image exactly once.

Token layout per image (global block first, then the merged high-res grid)::

    <im_start> (<im_patch> * cols + <im_col>) * rows <im_end>

`pooled_index[crop, q]` is the index into `tokens` of the `<im_patch>` that receives the
q-th pooled feature (row-major over the crop's pooled grid) of that crop; -1 = dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from model_service.config import PreprocessConfig
from model_service.tokenizer import MolmoTokenizer


@dataclass
class ImageInputs:
    """One preprocessed image (see CONTRACT.md)."""

    crops: np.ndarray  # float32 [n_crops, n_patches, patch_dim], global crop first
    patch_masks: np.ndarray  # float32 [n_crops, n_patches], fraction of real pixels
    tokens: np.ndarray  # int64 [n_image_tokens]
    pooled_index: np.ndarray  # int64 [n_crops, n_pooled], index into tokens or -1
    tiling: tuple[int, int]  # (rows, cols) of the high-res crops


def select_tiling(
    height: int, width: int, *, window: int, margin: int, max_crops: int
) -> tuple[int, int]:
    """Choose (rows, cols) of high-res crops for an image of `height x width` pixels.

    `window` is the pixel step between crops and `margin` the pixels of both margins
    together. Candidates with rows*cols <= max_crops are visited in the order
    (rows*cols, rows); scale = min(rows*window / h', cols*window / w') with h' = height -
    margin, w' = width - margin. The smallest scale >= 1 wins (least upscaling), else the
    largest scale (least downscaling); ties go to the earlier candidate (fewer crops).
    Sides not larger than the margin count as infinitely scalable, so the other side (or
    the 1x1 tiling) decides. float32 arithmetic mirrors the released training code.
    """
    inner_h = np.float32(height - margin)
    inner_w = np.float32(width - margin)
    candidates = sorted(
        (
            (r, c)
            for r in range(1, max_crops + 1)
            for c in range(1, max_crops + 1)
            if r * c <= max_crops
        ),
        key=lambda rc: (rc[0] * rc[1], rc[0]),
    )
    scales: list[float] = []
    for rows, cols in candidates:
        sy = np.float32(rows * window) / inner_h if inner_h > 0 else np.float32(np.inf)
        sx = np.float32(cols * window) / inner_w if inner_w > 0 else np.float32(np.inf)
        scales.append(float(min(sy, sx)))
    upscaling = [(s, i) for i, s in enumerate(scales) if s >= 1.0]
    if upscaling:
        return candidates[min(upscaling)[1]]  # smallest scale, then earliest index
    return candidates[min((-s, i) for i, s in enumerate(scales))[1]]  # largest, then earliest


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Convert a PIL image or an array to uint8 [H, W, 3] (EXIF rotation applied for PIL)."""
    if isinstance(image, Image.Image):
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ValueError(f"expected uint8 [H, W, 3] image, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def resize_and_pad(image: np.ndarray, out_h: int, out_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize (aspect kept, bilinear with antialiasing) and centre on a black canvas.

    Returns float32 pixels in [0, 1] [out_h, out_w, 3] and a float32 mask [out_h, out_w]
    that is 1 on image pixels and 0 on padding.
    """
    height, width = image.shape[:2]
    scale = min(np.float32(out_h) / np.float32(height), np.float32(out_w) / np.float32(width))
    new_h = min(out_h, max(1, int(np.float32(height) * scale)))
    new_w = min(out_w, max(1, int(np.float32(width) * scale)))
    # Resize in float per channel (mode "F"): no uint8 rounding before normalisation.
    pixels = image.astype(np.float32) / 255.0
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[:, :, ch])).resize(
                (new_w, new_h), Image.Resampling.BILINEAR
            )
        )
        for ch in range(3)
    ]
    resized = np.clip(np.stack(channels, axis=-1), 0.0, 1.0)  # [new_h, new_w, 3]
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    canvas = np.zeros((out_h, out_w, 3), np.float32)
    mask = np.zeros((out_h, out_w), np.float32)
    canvas[top : top + new_h, left : left + new_w] = resized
    mask[top : top + new_h, left : left + new_w] = 1.0
    return canvas, mask


def to_patches(array: np.ndarray, patch: int) -> np.ndarray:
    """[H, W, C] -> [(H/p)*(W/p), p*p*C], each patch flattened in (dy, dx, c) order."""
    height, width, chans = array.shape
    gh, gw = height // patch, width // patch
    array = array.reshape(gh, patch, gw, patch, chans)  # [gh, dy, gw, dx, c]
    array = array.transpose(0, 2, 1, 3, 4)  # [gh, gw, dy, dx, c]
    return array.reshape(gh * gw, patch * patch * chans)  # [n_patches, patch_dim]


def kept_span(index: int, count: int, grid: int, margins: tuple[int, int]) -> tuple[int, int]:
    """Patch rows [start, end) a crop keeps along one axis: the first crop also keeps its
    leading margin, the last its trailing margin, middle crops only the window."""
    start = 0 if index == 0 else margins[0]
    end = grid if index == count - 1 else grid - margins[1]
    return start, end


def image_block_tokens(rows: int, cols: int, tok: MolmoTokenizer) -> np.ndarray:
    """<im_start> (<im_patch> * cols <im_col>) * rows <im_end> as int64."""
    row = [tok.im_patch_id] * cols + [tok.im_col_id]
    return np.array([tok.im_start_id, *(row * rows), tok.im_end_id], dtype=np.int64)


class ImagePreprocessor:
    """Turn an RGB uint8 image into crops, patch masks, image tokens and pooled_index."""

    def __init__(self, cfg: PreprocessConfig, tokenizer: MolmoTokenizer) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.mean = np.array(cfg.mean, np.float32)
        self.std = np.array(cfg.std, np.float32)

    def __call__(self, image: Image.Image | np.ndarray) -> ImageInputs:
        image = to_rgb_array(image)
        cfg, ps = self.cfg, self.cfg.patch_size
        window_px = (cfg.grid - sum(cfg.overlap_margins)) * ps
        margin_px = sum(cfg.overlap_margins) * ps
        rows, cols = self.tiling(image.shape[0], image.shape[1])
        big, big_mask = resize_and_pad(
            image, rows * window_px + margin_px, cols * window_px + margin_px
        )
        small, small_mask = resize_and_pad(image, cfg.crop_size, cfg.crop_size)
        crops, masks = [self._patches(small)], [self._mask_patches(small_mask)]
        for i in range(rows):
            for j in range(cols):
                y0, x0 = i * window_px, j * window_px
                crops.append(self._patches(big[y0 : y0 + cfg.crop_size, x0 : x0 + cfg.crop_size]))
                masks.append(
                    self._mask_patches(big_mask[y0 : y0 + cfg.crop_size, x0 : x0 + cfg.crop_size])
                )
        tokens, pooled_index = self._layout(rows, cols)
        return ImageInputs(
            crops=np.stack(crops).astype(np.float32),  # [1 + rows*cols, n_patches, patch_dim]
            patch_masks=np.stack(masks).astype(np.float32),  # [1 + rows*cols, n_patches]
            tokens=tokens,
            pooled_index=pooled_index,
            tiling=(rows, cols),
        )

    def _patches(self, pixels: np.ndarray) -> np.ndarray:
        # Normalise after black padding, as CLIP training did: padding is not zero afterwards.
        return to_patches((pixels - self.mean) / self.std, self.cfg.patch_size)

    def _mask_patches(self, mask: np.ndarray) -> np.ndarray:
        per_pixel = to_patches(mask[:, :, None], self.cfg.patch_size)  # [n_patches, p*p]
        return per_pixel.mean(axis=-1)  # [n_patches]

    def _layout(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens for the global block then the merged grid, and each crop's pooled_index."""
        cfg, pool, pg = self.cfg, self.cfg.pool_size, self.cfg.pooled_grid
        spans_y = [kept_span(i, rows, cfg.grid, cfg.overlap_margins) for i in range(rows)]
        spans_x = [kept_span(j, cols, cfg.grid, cfg.overlap_margins) for j in range(cols)]
        # Pooled rows/cols each crop contributes to the merged grid, and where they start.
        len_y = [(e - s) // pool for s, e in spans_y]
        len_x = [(e - s) // pool for s, e in spans_x]
        off_y, off_x = np.cumsum([0, *len_y]), np.cumsum([0, *len_x])
        grid_h, grid_w = int(off_y[-1]), int(off_x[-1])

        global_tokens = image_block_tokens(pg, pg, self.tokenizer)
        hires_tokens = image_block_tokens(grid_h, grid_w, self.tokenizer)
        r, c = np.meshgrid(np.arange(pg), np.arange(pg), indexing="ij")  # [pg, pg] each
        index = [(1 + r * (pg + 1) + c).reshape(-1)]  # global crop keeps everything
        base = len(global_tokens) + 1  # first <im_patch> row of the high-res block
        for i in range(rows):
            for j in range(cols):
                gy = off_y[i] + r - spans_y[i][0] // pool  # merged-grid row of each pooled cell
                gx = off_x[j] + c - spans_x[j][0] // pool
                keep = (
                    (gy >= off_y[i]) & (gy < off_y[i + 1]) & (gx >= off_x[j]) & (gx < off_x[j + 1])
                )
                idx = np.where(keep, base + gy * (grid_w + 1) + gx, -1)  # [pg, pg]
                index.append(idx.reshape(-1))
        tokens = np.concatenate([global_tokens, hires_tokens])
        return tokens, np.stack(index).astype(np.int64)  # [n_tokens], [1 + rows*cols, pg*pg]

    def n_image_tokens(self, height: int, width: int) -> int:
        """Image token count for an image size, without touching pixels (for budgeting)."""
        rows, cols = self.tiling(height, width)
        return len(self._layout(rows, cols)[0])

    def tiling(self, height: int, width: int) -> tuple[int, int]:
        """The (rows, cols) tiling this preprocessor would pick for `height x width`."""
        cfg = self.cfg
        margin = sum(cfg.overlap_margins)
        return select_tiling(
            height, width, window=(cfg.grid - margin) * cfg.patch_size,
            margin=margin * cfg.patch_size, max_crops=cfg.max_crops,
        )  # fmt: skip
