"""Cheap live previews: latents mapped to RGB by a fixed linear map, without running the VAE."""

from __future__ import annotations

import numpy as np

# Rows are the four latent channels, columns R, G, B: least-squares fits of VAE-decoded colour against
# latents, as published for SD1.x (shared by SD2, same VAE) and SDXL and used by A1111 and ComfyUI
# for their "cheap approximation" previews.
LATENT_RGB_FACTORS = {
    "sd1": (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    "sdxl": (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
}
LATENT_RGB_BIAS = {"sd1": (0.0, 0.0, 0.0), "sdxl": (0.1084, -0.0175, -0.0011)}


def latents_to_rgb(latents, family: str = "sd1") -> np.ndarray:
    """(h, w, 3) uint8 RGB from (4, h, w) or (1, 4, h, w) latents (a torch tensor or numpy array); one pixel per latent.

    The map runs where the latents are (on the GPU for CUDA latents) so only the small RGB result
    crosses to the CPU. Values are the linear estimate of decoded colour in [-1, 1], scaled to 0..255.
    """
    key = "sdxl" if family == "sdxl" else "sd1"
    if hasattr(latents, "detach"):
        import torch

        x = latents.detach()
        if x.ndim == 4:
            x = x[0]
        if x.ndim != 3 or x.shape[0] != 4:
            raise ValueError(f"expected (4, h, w) latents, got {tuple(latents.shape)}")
        factors = torch.tensor(LATENT_RGB_FACTORS[key], dtype=torch.float32, device=x.device)
        bias = torch.tensor(LATENT_RGB_BIAS[key], dtype=torch.float32, device=x.device)
        rgb = torch.einsum("chw,cr->hwr", x.float(), factors) + bias
        rgb = ((rgb + 1.0) * 127.5).clamp_(0, 255).round_().to(torch.uint8)
        return rgb.cpu().numpy()
    x = np.asarray(latents, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 4:
        raise ValueError(f"expected (4, h, w) latents, got {x.shape}")
    rgb = np.einsum("chw,cr->hwr", x, np.asarray(LATENT_RGB_FACTORS[key], np.float32))
    rgb += np.asarray(LATENT_RGB_BIAS[key], np.float32)
    return np.clip(np.rint((rgb + 1.0) * 127.5), 0, 255).astype(np.uint8)
