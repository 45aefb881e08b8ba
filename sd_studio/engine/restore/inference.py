"""Running a loaded restoration model on uint8 pixels: array -> tensor -> model -> array, cancellable between tiles."""

from __future__ import annotations

import numpy as np

from sd_studio.errors import GenerationError


def run_image_model(model, rgb: np.ndarray) -> np.ndarray:
    """The model's (H*scale, W*scale, 3) uint8 output for an (H, W, 3) uint8 RGB input (grey input for 1-channel models)."""
    import torch

    descriptor = model.descriptor
    tensor = _to_tensor(rgb, descriptor.input_channels, model)
    with torch.inference_mode():
        try:
            out = descriptor(tensor)
        except Exception as exc:
            from sd_studio.engine.models.devices import is_out_of_memory_error

            if is_out_of_memory_error(exc):
                raise GenerationError(f"Out of memory running {model.name}; use smaller tiles.") from None
            raise
    return _to_array(out)


def run_masked_model(model, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An eraser's (H, W, 3) uint8 output for an RGB image and an (H, W) mask (non-zero = fill)."""
    import torch

    descriptor = model.descriptor
    image = _to_tensor(rgb, 3, model)
    holes = torch.from_numpy((mask > 0).astype(np.float32))[None, None].to(image.device, image.dtype)
    with torch.inference_mode():
        out = descriptor(image, holes)
    return _to_array(out)


def _to_tensor(rgb: np.ndarray, channels: int, model):
    import torch

    pixels = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    if channels == 1:
        pixels = np.ascontiguousarray(_luma(pixels)[..., None])
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div_(255.0)
    dtype = next(iter(model.descriptor.model.parameters())).dtype
    return tensor.to(model.device, dtype)


def _to_array(tensor) -> np.ndarray:
    out = tensor[0].float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out[..., :3])


def _luma(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(rgb.astype(np.float32) @ weights), 0, 255).astype(np.uint8)
