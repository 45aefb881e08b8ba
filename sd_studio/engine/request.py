"""GenerationRequest, Progress and GenerationResult: what the engine is asked, reports and returns."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sd_studio.document.geometry import Bounds
from sd_studio.errors import GenerationError

MODES = ("inpaint", "img2img", "txt2img")
ENGINES = ("auto", "diffusion", "classical")
DEVICES = ("auto", "cpu", "cuda", "mps")
MEMORY_MODES = ("auto", "none", "attention-slicing", "vae-tiling", "cpu-offload")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MAX_SEED = 2**32 - 1
MAX_SIDE = 4096
MAX_VARIANTS = 16
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0, "txt2img": 1.0}


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one generation needs: pixels, mask and settings; `validated()` checks and completes it."""

    mode: str
    image: np.ndarray | None = None  # (H, W, 3|4) uint8, the whole source image (None for txt2img)
    mask: np.ndarray | None = None  # (H, W) uint8, 255 repaints; optional selection outside inpaint
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    guidance: float = 7.0
    strength: float | None = None  # None -> 0.75 img2img, 1.0 inpaint
    seed: int | None = None  # None -> random, reported back in the result
    scheduler: str = "Euler a"
    width: int = 512  # txt2img size without an image (multiple of 8)
    height: int = 512
    variants: int = 1  # N images, seeds s, s+1, ...
    model: str | None = None  # hub id, diffusers folder, or single-file .safetensors
    loras: tuple[tuple[str, float], ...] = ()
    engine: str = "auto"
    padding: int = 32
    feather: int = 4
    resolution: int | None = None  # None -> the model's native one
    whole_image: bool = False
    match_color: bool = False
    device: str = "auto"
    memory_mode: str = "auto"
    precision: str = "auto"

    def validated(self) -> "GenerationRequest":
        """A copy with defaults filled (strength, seed, engine); GenerationError names the first bad setting."""
        from sd_studio.engine.schedulers import scheduler_names

        def fail(message: str) -> None:
            raise GenerationError(message)

        if self.mode not in MODES:
            fail(f"Unknown mode {self.mode!r}; use one of: {', '.join(MODES)}.")
        image = self.image
        if image is not None:
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
                fail("The source image must be an (H, W, 3 or 4) uint8 array.")
            if image.shape[0] < 1 or image.shape[1] < 1:
                fail("The source image is empty.")
        elif self.mode != "txt2img":
            fail(f"{self.mode} needs a source image.")
        mask = self.mask
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.uint8 or mask.ndim != 2:
                fail("The mask must be an (H, W) uint8 array.")
            if image is None:
                fail("A mask needs a source image of the same size.")
            if mask.shape != image.shape[:2]:
                fail(f"The mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}.")
        if self.mode == "inpaint":
            if mask is None:
                fail("Inpainting needs a mask: paint the area to repaint first.")
            if not mask.any():
                fail("The inpaint mask is empty: paint the area to repaint first.")
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            fail("The prompt and negative prompt must be text.")
        if not _is_int(self.steps) or not 1 <= self.steps <= 150:
            fail(f"Steps must be a whole number from 1 to 150, not {self.steps!r}.")
        if not _is_number(self.guidance) or not 0 <= self.guidance <= 30:
            fail(f"Guidance (CFG scale) must be from 0 to 30, not {self.guidance!r}.")
        strength = DEFAULT_STRENGTH[self.mode] if self.strength is None else self.strength
        if not _is_number(strength) or not 0 < strength <= 1:
            fail(f"Denoising strength must be above 0 and at most 1, not {strength!r}.")
        seed = random.randint(0, MAX_SEED) if self.seed is None else self.seed
        if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
            fail(f"The seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}.")
        if self.scheduler not in scheduler_names():
            fail(f"Unknown sampler {self.scheduler!r}; choose one of: {', '.join(scheduler_names())}.")
        for name, side in (("Width", self.width), ("Height", self.height)):
            if not _is_int(side) or not 64 <= side <= MAX_SIDE or side % 8:
                fail(f"{name} must be a multiple of 8 from 64 to {MAX_SIDE}, not {side!r}.")
        if not _is_int(self.variants) or not 1 <= self.variants <= MAX_VARIANTS:
            fail(f"Variants must be from 1 to {MAX_VARIANTS}, not {self.variants!r}.")
        if seed + self.variants - 1 > MAX_SEED:
            seed = MAX_SEED - self.variants + 1
        model = self.model.strip() if isinstance(self.model, str) else self.model
        if model is not None and (not isinstance(model, str) or not model):
            fail("The model must be a hub id, a diffusers folder or a .safetensors file.")
        loras = tuple(self.loras)
        for entry in loras:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and _is_number(entry[1])):
                fail("Each LoRA must be a (path, weight) pair.")
            if not entry[0].lower().endswith(".safetensors"):
                fail(f"LoRA {entry[0]!r} is not a .safetensors file; only .safetensors LoRAs are loaded.")
        if self.engine not in ENGINES:
            fail(f"Unknown engine {self.engine!r}; use one of: {', '.join(ENGINES)}.")
        engine = self.engine
        if engine == "auto":
            engine = "diffusion" if model else "classical"
        if engine == "diffusion" and not model:
            fail("Diffusion needs a model: pass a hub id, a diffusers folder or a .safetensors file.")
        if engine == "classical" and self.mode != "inpaint":
            fail(f"{self.mode} needs a diffusion model; the classical engine can only fill masked areas.")
        if not _is_int(self.padding) or self.padding < 0:
            fail(f"Padding must be a whole number of pixels, 0 or more, not {self.padding!r}.")
        if not _is_int(self.feather) or self.feather < 0:
            fail(f"Feather must be a whole number of pixels, 0 or more, not {self.feather!r}.")
        if self.resolution is not None and (
            not _is_int(self.resolution) or not 64 <= self.resolution <= MAX_SIDE or self.resolution % 8
        ):
            fail(f"Resolution must be a multiple of 8 from 64 to {MAX_SIDE}, not {self.resolution!r}.")
        if self.device not in DEVICES:
            fail(f"Unknown device {self.device!r}; use one of: {', '.join(DEVICES)}.")
        if self.memory_mode not in MEMORY_MODES:
            fail(f"Unknown memory mode {self.memory_mode!r}; use one of: {', '.join(MEMORY_MODES)}.")
        if self.precision not in PRECISIONS:
            fail(f"Unknown precision {self.precision!r}; use one of: {', '.join(PRECISIONS)}.")
        return dataclasses.replace(
            self,
            image=image,
            mask=mask,
            strength=float(strength),
            seed=int(seed),
            model=model,
            loras=tuple((p, float(w)) for p, w in loras),
            engine=engine,
            guidance=float(self.guidance),
        )

    @property
    def seeds(self) -> list[int]:
        """The seed of each variant: seed, seed + 1, ... (call on a validated request)."""
        if self.seed is None:
            raise GenerationError("The request has no seed yet; validate it first.")
        return [self.seed + i for i in range(self.variants)]


@dataclass
class Progress:
    """One progress report: the phase, a step count and, while denoising, a small RGB preview."""

    phase: str  # "loading" | "downloading" | "denoising" | "decoding" | ...
    step: int
    total: int
    preview: np.ndarray | None = None  # small (h, w, 3) uint8 RGB preview of the current latents
    message: str = ""


ProgressCallback = Callable[[Progress], None]
CancelCallback = Callable[[], bool]


@dataclass
class GenerationResult:
    """The variants of one generation as RGBA patches over `region`, with the parameters that made each."""

    images: list[np.ndarray]  # per variant: (h, w, 4) uint8 RGBA covering region; alpha is the paste mask
    region: Bounds  # where the images sit in the source image
    seeds: list[int]
    parameters: list[dict] = field(default_factory=list)

    def parameters_text(self, i: int = 0) -> str:
        """Variant i's parameters as AUTOMATIC1111 `parameters` text (the PNG infotext format)."""
        from sd_studio.document.io.parameters import format_parameters

        return format_parameters(self.parameters[i])

    def composite_onto(self, image: np.ndarray, i: int = 0) -> np.ndarray:
        """The full-size RGBA image: variant i composed over `image` (straight alpha, source-over)."""
        src = np.asarray(image)
        if src.ndim != 3 or src.shape[2] not in (3, 4):
            raise GenerationError("The image to compose onto must be (H, W, 3 or 4).")
        out = src.copy() if src.shape[2] == 4 else np.dstack([src, np.full(src.shape[:2], 255, np.uint8)])
        patch = self.images[i]
        x, y, w, h = self.region
        dst = out[y : y + h, x : x + w]
        if dst.shape[:2] != patch.shape[:2]:
            raise GenerationError("The result's region does not fit inside the image.")
        fa = patch[..., 3:4].astype(np.float32) / 255.0
        ba = dst[..., 3:4].astype(np.float32) / 255.0
        oa = fa + ba * (1.0 - fa)
        rgb = patch[..., :3] * fa + dst[..., :3] * ba * (1.0 - fa)
        rgb = np.divide(rgb, oa, out=np.zeros_like(rgb), where=oa > 0)
        dst[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        dst[..., 3:4] = np.clip(np.rint(oa * 255.0), 0, 255).astype(np.uint8)
        dst[(dst[..., 3] == 0)] = 0
        return out


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
