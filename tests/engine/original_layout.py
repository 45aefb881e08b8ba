"""Diffusers state dicts -> the ORIGINAL single-file (LDM / A1111) key layout, for building test checkpoints.

The reverse of diffusers' `convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint` and `convert_open_clip_checkpoint`, written like diffusers'
`scripts/convert_diffusers_to_original_stable_diffusion.py` but for any block count and layers per
block, so tiny models can be saved the way Civitai/HF single files are.
"""

from __future__ import annotations

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
UNET_RESNET = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]
VAE_ATTENTION = [
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def _rename(key: str, prefixes: dict[str, tuple[str, list]]) -> str:
    """Replace the longest matching diffusers prefix, then apply that prefix's inner renames."""
    for old in sorted(prefixes, key=len, reverse=True):
        if key.startswith(old):
            new, inner = prefixes[old]
            rest = key[len(old) :]
            for a, b in inner:
                if rest.startswith(a):
                    rest = b + rest[len(a) :]
                    break
            return new + rest
    raise KeyError(f"no original-layout name for {key}")


def unet_to_original(state_dict: dict, config: dict) -> dict:
    """A diffusers UNet2DConditionModel state dict under `model.diffusion_model.` original names."""
    per = config["layers_per_block"] + 1
    n = len(config["block_out_channels"])
    prefixes: dict[str, tuple[str, list]] = {d: (o, []) for d, o in UNET_TOP.items()}
    for i in range(n):
        for j in range(per - 1):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{per * i + j + 1}.0.", UNET_RESNET)
            prefixes[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{per * i + j + 1}.1.", [])
        if i < n - 1:
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = (f"input_blocks.{per * (i + 1)}.0.op.", [])
        for j in range(per):
            prefixes[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{per * i + j}.0.", UNET_RESNET)
            prefixes[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{per * i + j}.1.", [])
        if i < n - 1:
            slot = 2 if "CrossAttn" in config["up_block_types"][i] else 1
            prefixes[f"up_blocks.{i}.upsamplers.0."] = (f"output_blocks.{per * i + per - 1}.{slot}.", [])
    prefixes["mid_block.resnets.0."] = ("middle_block.0.", UNET_RESNET)
    prefixes["mid_block.attentions.0."] = ("middle_block.1.", [])
    prefixes["mid_block.resnets.1."] = ("middle_block.2.", UNET_RESNET)
    return {UNET_PREFIX + _rename(k, prefixes): v for k, v in state_dict.items()}


def vae_to_original(state_dict: dict, config: dict) -> dict:
    """A diffusers AutoencoderKL state dict under `first_stage_model.` original names (attention as 1x1 convs)."""
    per = config["layers_per_block"]
    n = len(config["block_out_channels"])
    resnet = [("conv_shortcut.", "nin_shortcut.")]
    prefixes: dict[str, tuple[str, list]] = {
        "encoder.conv_norm_out.": ("encoder.norm_out.", []),
        "decoder.conv_norm_out.": ("decoder.norm_out.", []),
    }
    for part in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
        for leaf in ("conv_in.", "conv_out.") if part in ("encoder", "decoder") else ("",):
            name = f"{part}.{leaf}" if leaf else f"{part}."
            prefixes[name] = (name, [])
    for i in range(n):
        for j in range(per):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = (f"encoder.down.{i}.block.{j}.", resnet)
        for j in range(per + 1):
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = (f"decoder.up.{n - 1 - i}.block.{j}.", resnet)
        if i < n - 1:
            prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = (f"encoder.down.{i}.downsample.", [])
            prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = (f"decoder.up.{n - 1 - i}.upsample.", [])
    for part in ("encoder", "decoder"):
        for j in range(2):
            prefixes[f"{part}.mid_block.resnets.{j}."] = (f"{part}.mid.block_{j + 1}.", resnet)
        prefixes[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", VAE_ATTENTION)
    out = {}
    for key, value in state_dict.items():
        new = _rename(key, prefixes)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original attention uses 1x1 convolutions
        out[VAE_PREFIX + new] = value
    return out


def clip_to_original(state_dict: dict, prefix: str = CLIP_PREFIX) -> dict:
    """A transformers CLIPTextModel state dict under the original `cond_stage_model.transformer.text_model.` names."""
    out = {}
    for key, value in state_dict.items():
        name = key if key.startswith("text_model.") or key.startswith("text_projection") else "text_model." + key
        out[prefix + name] = value
    return out


def open_clip_to_original(state_dict: dict, prefix: str = OPEN_CLIP_PREFIX) -> dict:
    """A transformers CLIP text state dict as OpenCLIP names it (SD 2.x / SDXL's second encoder).

    q/k/v projections become one `in_proj_weight`; the projection is stored transposed.
    """
    sd = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
    out = {}
    out[prefix + "positional_embedding"] = sd.pop("embeddings.position_embedding.weight")
    out[prefix + "token_embedding.weight"] = sd.pop("embeddings.token_embedding.weight")
    out[prefix + "ln_final.weight"] = sd.pop("final_layer_norm.weight")
    out[prefix + "ln_final.bias"] = sd.pop("final_layer_norm.bias")
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd.pop("text_projection.weight").T.contiguous()
    sd.pop("embeddings.position_ids", None)
    layers = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")})
    renames = [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."),
               ("mlp.fc2.", "mlp.c_proj."), ("self_attn.out_proj.", "attn.out_proj.")]
    import torch

    for i in layers:
        src = f"encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [sd.pop(src + f"self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")]
            )
        for key in [k for k in sd if k.startswith(src)]:
            rest = key[len(src) :]
            for a, b in renames:
                if rest.startswith(a):
                    rest = b + rest[len(a) :]
                    break
            out[dst + rest] = sd.pop(key)
    if sd:
        raise KeyError(f"no OpenCLIP name for {sorted(sd)[:3]}")
    return out
