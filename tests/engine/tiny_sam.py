"""A tiny random Segment Anything model built from config, saved the ways users have SAM weights.

The real frame (1024 pixels, 16-pixel patches, a 64 x 64 embedding, 256 x 256 low-resolution masks)
with a few narrow layers, so the tests exercise the user's code path in seconds. The decoder keeps
SAM's eight attention heads, the one thing a bare .safetensors file's shapes cannot tell.
"""

from __future__ import annotations

from pathlib import Path


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
