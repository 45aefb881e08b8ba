"""Importing spandrel where torchvision cannot be had, without leaving a fake torchvision behind.

spandrel (the loader of upscaler, face, eraser and colouriser model files) imports torchvision at
module level for three helpers only: LaMa's `rotate` and `InterpolationMode`, RestoreFormer's
`normalize`. PyPI's Linux torchvision wheels are built against CUDA torch (their `_C.so` needs
libtorch_cuda.so), so on a machine with the CPU build of torch (what the Makefile installs where there
is no NVIDIA GPU) torchvision is either absent or fails to load. When `import torchvision` fails,
`import_spandrel()` puts a stand-in module holding those three helpers (written with torch) in
sys.modules for the duration of `import spandrel` only, then removes it: spandrel's modules keep
their references to the helpers, and every other library (transformers checks whether torchvision
is importable to pick its image processors) still sees no torchvision. A working torchvision is
used as it is.
"""

from __future__ import annotations

import enum
import importlib
import math
import sys
import threading
import types

_STANDIN_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_lock = threading.Lock()


def import_spandrel():
    """The spandrel module (with spandrel_extra_arches' architectures installed when that is importable)."""
    with _lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if _torchvision_works():
            spandrel = importlib.import_module("spandrel")
        else:
            saved = {name: sys.modules.get(name) for name in _STANDIN_NAMES}
            sys.modules.update(_standin_modules())
            try:
                spandrel = importlib.import_module("spandrel")
                _install_extra_arches()
            finally:
                for name, module in saved.items():
                    if module is None:
                        sys.modules.pop(name, None)
                    else:
                        sys.modules[name] = module
            return spandrel
        _install_extra_arches()
        return spandrel


def extra_arches_installed() -> bool:
    """True when spandrel_extra_arches (MAT, CodeFormer, DDColor, ...) is importable."""
    import importlib.util

    return importlib.util.find_spec("spandrel_extra_arches") is not None


def _install_extra_arches() -> None:
    """Register spandrel_extra_arches' architectures (MAT, CodeFormer, DDColor) when that package is there."""
    if not extra_arches_installed():
        return
    import spandrel_extra_arches

    try:
        spandrel_extra_arches.install()
    except Exception as exc:  # already installed into the registry: spandrel refuses duplicates
        if type(exc).__name__ != "DuplicateArchitectureError":
            raise


def _torchvision_works() -> bool:
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or present but built for another torch (OSError, RuntimeError)
        for name in list(sys.modules):
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]  # a half-imported broken torchvision must not linger either
        return False
    return True


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names (only NEAREST and BILINEAR are implemented by the stand-in rotate)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """torchvision's tensor rotate: counter-clockwise by `angle` degrees about the centre, same size, `fill` outside."""
    import torch
    import torch.nn.functional as F

    if expand or center is not None:
        raise NotImplementedError("the stand-in rotate supports neither expand nor center")
    squeeze = img.dim() == 3
    x = img.unsqueeze(0) if squeeze else img
    n, _, h, w = x.shape
    radians = math.radians(float(angle))
    cos, sin = math.cos(radians), math.sin(radians)
    # affine_grid maps output to input positions in [-1, 1] units; the pixel aspect enters the cross terms.
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=torch.float32, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    mode = "nearest" if interpolation == InterpolationMode.NEAREST else "bilinear"
    data = x if x.dtype.is_floating_point else x.float()
    out = F.grid_sample(data, grid.to(data.dtype), mode=mode, padding_mode="zeros", align_corners=False)
    if fill:
        inside = F.grid_sample(torch.ones_like(data[:, :1]), grid.to(data.dtype), mode=mode, align_corners=False)
        fill_value = torch.as_tensor(fill, dtype=data.dtype, device=data.device).reshape(1, -1, 1, 1)
        out = out + (1 - inside) * fill_value
    out = out.to(img.dtype)
    return out.squeeze(0) if squeeze else out


def normalize(tensor, mean, std, inplace=False):
    """torchvision's normalize: (tensor - mean) / std per channel of a (..., C, H, W) tensor."""
    import torch

    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    if inplace:
        return tensor.sub_(mean_t).div_(std_t)
    return (tensor - mean_t) / std_t


def _standin_modules() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision", "Stand-in for spandrel's import only (see sd_studio.engine.restore.spandrel_import).")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode
    functional.rotate = rotate
    functional.normalize = normalize
    transforms.functional = functional
    root.transforms = transforms
    # Marked so a test (or a puzzled developer) can tell the stand-in from the real package.
    root.__sd_studio_standin__ = True
    return {"torchvision": root, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}
