"""Test data for smart masks: a tiny random Segment Anything model built from config (saved the ways users
have SAM weights) and photos of a drawn object on a textured background, with the object's true mask.

The model has the real frame (1024 pixels, 16-pixel patches, a 64 x 64 embedding, 256 x 256 low-resolution masks)
with a few narrow layers, so the tests exercise the user's code path in seconds. The decoder keeps
SAM's eight attention heads, the one thing a bare .safetensors file's shapes cannot tell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_sam_config():
    """A SamConfig with SAM's frame and narrow layers."""
    from transformers import SamConfig

    return SamConfig(
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "output_channels": 32,
                       "window_size": 14, "global_attn_indexes": [1], "mlp_dim": 64, "num_pos_feats": 16},
        prompt_encoder_config={"hidden_size": 32},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 8, "iou_head_hidden_dim": 32},
    )


def tiny_sam(seed: int = 0):
    """A random-weight SamModel of tiny_sam_config, in eval mode."""
    import torch
    from transformers import SamModel

    torch.manual_seed(seed)
    return SamModel(tiny_sam_config()).eval()


def save_tiny_sam(folder: Path, seed: int = 0) -> Path:
    """A tiny SAM written as a transformers folder (config.json + model.safetensors)."""
    tiny_sam(seed).save_pretrained(folder, safe_serialization=True)
    return folder


# segment-anything's own names, written here from its source (modeling/sam.py, image_encoder.py,
# mask_decoder.py, prompt_encoder.py, transformer.py), independently of the converter under test.
def to_original_layout(state: dict) -> dict:
    """A transformers SamModel state dict under segment-anything's checkpoint names."""
    import re

    out = {}
    for key, value in state.items():
        if key == "shared_image_embedding.positional_embedding":
            continue
        k = key.replace("vision_encoder.", "image_encoder.")
        k = k.replace("image_encoder.layers.", "image_encoder.blocks.")
        k = k.replace("patch_embed.projection", "patch_embed.proj")
        k = re.sub(r"neck\.conv(\d)", lambda m: f"neck.{(int(m.group(1)) - 1) * 2}", k)
        k = re.sub(r"neck\.layer_norm(\d)", lambda m: f"neck.{(int(m.group(1)) - 1) * 2 + 1}", k)
        k = k.replace("prompt_encoder.shared_embedding.positional_embedding",
                      "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix")
        k = k.replace("prompt_encoder.point_embed.", "prompt_encoder.point_embeddings.")
        k = k.replace("mask_embed.conv1", "mask_downscaling.0").replace("mask_embed.layer_norm1", "mask_downscaling.1")
        k = k.replace("mask_embed.conv2", "mask_downscaling.3").replace("mask_embed.layer_norm2", "mask_downscaling.4")
        k = k.replace("mask_embed.conv3", "mask_downscaling.6")
        k = k.replace("mask_decoder.upscale_conv1", "mask_decoder.output_upscaling.0")
        k = k.replace("mask_decoder.upscale_layer_norm", "mask_decoder.output_upscaling.1")
        k = k.replace("mask_decoder.upscale_conv2", "mask_decoder.output_upscaling.3")
        for head in ("iou_prediction_head", r"output_hypernetworks_mlps\.\d+"):
            k = re.sub(rf"({head})\.layers\.0\.", r"\1.layers.1.", k)
            k = re.sub(rf"({head})\.proj_in\.", r"\1.layers.0.", k)
            k = re.sub(rf"({head})\.proj_out\.", r"\1.layers.2.", k)
        k = k.replace(".layer_norm", ".norm")
        out[k] = value
    return out


# -- photos ---------------------------------------------------------------------------------------
def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A leafy background: blotches of greens and browns at several scales plus grain, (h, w, 3) uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    # Blotches at a quarter of the size (cheap for a 24-megapixel photo), scaled up, then full-size grain.
    w4, h4 = max(1, width // 4), max(1, height // 4)
    out = np.zeros((h4, w4, 3), np.float32)
    for cell, weight in ((16, 0.5), (4, 0.3), (1, 0.2)):
        noise = rng.random((h4 // cell + 2, w4 // cell + 2, 3)).astype(np.float32) * weight
        out += cv2.resize(noise, (w4, h4), interpolation=cv2.INTER_CUBIC)
    palette = np.array([[70, 110, 40], [120, 90, 50], [40, 80, 60]], np.float32) / 1.6
    mixed = np.clip(cv2.transform(out, palette.T.copy()), 0, 255).astype(np.uint8)
    mixed = cv2.resize(mixed, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.add(mixed, _grain(width, height, rng, 10), dtype=cv2.CV_8U)


def _grain(width: int, height: int, rng, spread: int) -> np.ndarray:
    """Zero-mean-ish noise as signed bytes, tiled from one 256 x 256 block (a 24-megapixel photo costs no more)."""
    block = rng.normal(0, spread, (256, 256, 3)).clip(-127, 127).astype(np.int8)
    reps = (height // 256 + 1, width // 256 + 1, 1)
    return np.tile(block, reps)[:height, :width].view(np.int8)


def disc_photo(width: int, height: int, centre: tuple[int, int], radius: int, colour=(190, 70, 70), seed: int = 0):
    """The textured background with a grainy disc drawn on it, and the disc's true mask."""
    import cv2

    rng = np.random.default_rng(seed + 1)
    image = textured(width, height, seed)
    truth = np.zeros((height, width), np.uint8)
    cv2.circle(truth, centre, radius, 255, -1, lineType=cv2.LINE_8)
    flat = np.empty((height, width, 3), np.uint8)
    flat[:] = colour
    paint = cv2.add(flat, _grain(width, height, rng, 14), dtype=cv2.CV_8U)
    cv2.copyTo(paint, truth, image)
    return image, truth > 0
