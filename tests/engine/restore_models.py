"""Tiny random spandrel models of each family, written as .safetensors, for the restore tests and benchmarks.

Each is built from its architecture class with small hyper-parameters (GFPGAN and LaMa have sizes
spandrel fixes, so theirs are full size, built on the meta device and filled with small random
values, which is fast), then saved with safetensors. The tests load them back through
sd_studio.engine.restore.models, i.e. through spandrel's detection from the state dict's keys.
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = {
    # name: (architecture id spandrel reports, needs spandrel_extra_arches)
    "esrgan": ("ESRGAN", False),
    "compact": ("Compact", False),
    "swinir": ("SwinIR", False),
    "hat": ("HAT", False),
    "dat": ("DAT", False),
    "gfpgan": ("GFPGAN", False),
    "restoreformer": ("RestoreFormer", False),
    "lama": ("LaMa", False),
    "codeformer": ("CodeFormer", True),
    "mat": ("MAT", True),
    "ddcolor": ("DDColor", True),
}


def build(family: str):
    """A random-weight torch module of the family, small where spandrel lets it be."""
    import torch

    from sd_studio.engine.restore.spandrel_import import import_spandrel

    import_spandrel()
    torch.manual_seed(0)
    if family == "esrgan":
        from spandrel.architectures.ESRGAN import ESRGAN

        return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    if family == "compact":
        from spandrel.architectures.Compact import Compact

        return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)
    if family == "swinir":
        from spandrel.architectures.SwinIR import SwinIR

        return SwinIR(img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2,
                      upscale=2, upsampler="pixelshuffle", resi_connection="1conv")
    if family == "hat":
        from spandrel.architectures.HAT import HAT

        return HAT(img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2,
                   upscale=2, upsampler="pixelshuffle", squeeze_factor=4, compress_ratio=3)
    if family == "dat":
        from spandrel.architectures.DAT import DAT

        return DAT(img_size=16, embed_dim=32, depth=[2], num_heads=[2], split_size=[2, 4], expansion_factor=2,
                   upscale=2, upsampler="pixelshuffle")
    if family == "restoreformer":
        from spandrel.architectures.RestoreFormer import RestoreFormer

        return RestoreFormer(n_embed=16, embed_dim=8, ch=32, out_ch=3, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1,
                             attn_resolutions=(16,), resolution=512, z_channels=8, head_size=8, in_channels=3)
    if family == "codeformer":
        from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

        return CodeFormer(dim_embd=16, n_head=2, n_layers=1, codebook_size=16, latent_size=256,
                          connect_list=["32"], fix_modules=[])
    if family in ("gfpgan", "lama"):
        return _fixed_size(family)
    if family == "mat":
        from spandrel_extra_arches.architectures.MAT import MAT

        return MAT()
    if family == "ddcolor":
        from spandrel_extra_arches.architectures.DDColor import DDColor

        return DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder", num_input_channels=3,
                       input_size=(64, 64), nf=512, num_output_channels=2, last_norm="Spectral",
                       do_normalize=False, num_queries=16, num_scales=3, dec_layers=3)
    raise ValueError(family)


def _fixed_size(family: str):
    import torch

    with torch.device("meta"):
        if family == "gfpgan":
            from spandrel.architectures.GFPGAN import GFPGAN

            model = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                           fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                           sft_half=True)
        else:
            from spandrel.architectures.LaMa import LaMa

            model = LaMa(in_nc=4, out_nc=3)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)
            else:
                tensor.zero_()
    return model


def save(family: str, folder: Path, name: str | None = None) -> Path:
    """The family's tiny model written as FOLDER/NAME.safetensors; returns the path."""
    from safetensors.torch import save_file

    model = build(family)
    # Half precision halves the files of the full-size families; spandrel converts on load.
    state = {k: (v.half() if v.numel() > 4096 and v.dtype.is_floating_point else v).detach().contiguous().clone()
             for k, v in model.state_dict().items()}
    path = Path(folder) / f"{name or family}.safetensors"
    save_file(state, str(path))
    return path
