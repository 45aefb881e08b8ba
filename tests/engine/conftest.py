"""Tiny Stable Diffusion models built from config and saved as diffusers folders, shared by the engine tests.

Built the way diffusers' own pipeline tests build theirs (`get_dummy_components`), with two
differences that matter to us: the VAE downsamples by the real factor of 8 (four blocks), so a
64 x 64 image gives 8 x 8 latents exactly as a real SD model would, and the tokenizer is made
offline from a byte-level vocabulary (one token per character, no merges) so no download is needed.
The folders are written with `save_pretrained` and then loaded through the same code path a user's
model takes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_IMAGE = 64  # pixels; 8 x 8 latents


def tiny_tokenizer():
    """A CLIPTokenizer with a byte-level vocabulary, no merges, model_max_length 77."""
    from transformers import CLIPTokenizer
    from tokenizers import pre_tokenizers

    chars = pre_tokenizers.ByteLevel.alphabet()
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_components(in_channels: int = 4, seed: int = 0, unet_channels: tuple[int, int] = (32, 64)) -> dict:
    """Random-weight SD1-style components: UNet (4 or 9 in-channels), 8x VAE, CLIP text encoder."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=unet_channels,
        layers_per_block=2,
        sample_size=TINY_IMAGE // 8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=TINY_IMAGE,
    )
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }


def save_tiny_model(folder: Path, in_channels: int = 4, **kwargs) -> Path:
    """Write a tiny SD1-style model (inpainting when in_channels is 9) as a diffusers folder."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    pipe = cls(**tiny_components(in_channels, **kwargs), requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_sdxl_components(seed: int = 0) -> dict:
    """Random-weight SDXL-style components: a text_time UNet, two CLIP text encoders (one projecting), 8x VAE."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    base = tiny_components(seed=seed)
    tokenizer = base["tokenizer"]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=TINY_IMAGE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids of 8 dims + the pooled text embedding
        cross_attention_dim=64,  # both encoders' hidden states side by side
    )
    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    return {
        "unet": unet,
        "vae": base["vae"],
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer,
        "tokenizer_2": tiny_tokenizer(),
        "scheduler": base["scheduler"],
        "image_encoder": None,
        "feature_extractor": None,
    }


def save_tiny_sdxl_model(folder: Path, **kwargs) -> Path:
    """Write a tiny SDXL-style model as a diffusers folder."""
    from diffusers import StableDiffusionXLPipeline

    StableDiffusionXLPipeline(**tiny_sdxl_components(**kwargs)).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine extra threads only thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A diffusers folder holding a tiny random SD1-style text-to-image model (4-channel UNet)."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_inpaint_dir(tmp_path_factory) -> Path:
    """A diffusers folder holding a tiny random SD1-style inpainting model (9-channel UNet)."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd-inpaint", in_channels=9)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    """A diffusers folder holding a tiny random SDXL-style model (two text encoders, text_time UNet)."""
    return save_tiny_sdxl_model(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture
def tiny_image():
    """A 64 x 64 RGB test pattern (uint8): a gradient with a square, so edges exist."""
    import numpy as np

    y, x = np.mgrid[0:TINY_IMAGE, 0:TINY_IMAGE]
    img = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    img[20:44, 20:44] = (200, 40, 40)
    return img


@pytest.fixture
def tiny_mask():
    """A 64 x 64 uint8 mask: 255 in a centred 24 x 24 square, 0 elsewhere."""
    import numpy as np

    mask = np.zeros((TINY_IMAGE, TINY_IMAGE), np.uint8)
    mask[20:44, 20:44] = 255
    return mask


def save_tiny_lora(model_dir: Path, path: Path) -> Path:
    """A LoRA .safetensors for a tiny model's UNet, with random (non-zero) weights, as trainers save it."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(
        path.parent, unet_lora_layers=get_peft_model_state_dict(unet), weight_name=path.name, safe_serialization=True
    )
    return path


@pytest.fixture(scope="session")
def tiny_lora(tiny_sd_dir, tmp_path_factory) -> Path:
    """A LoRA file for tiny_sd_dir."""
    return save_tiny_lora(tiny_sd_dir, tmp_path_factory.mktemp("lora") / "style.safetensors")
