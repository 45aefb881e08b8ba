"""Large regions: a mask larger than the model's native size is generated at native size, enlarged, then
refined in tiles at low strength — so a 40-megapixel scan never needs a 40-megapixel latent.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sd_studio.engine.request import GenerationResult

LARGE = 1.5
"""A region whose long side exceeds this many times the model's resolution is refined in tiles."""

REFINE_STRENGTH = 0.3
"""The strength of the refining pass: detail, not new content."""


def generate_large(request, *, progress=None, cancel=None, models=None,
                   refine_strength: float = REFINE_STRENGTH) -> GenerationResult:
    """generate(request), then, when its region was scaled down a lot, each variant refined in tiles at its full size."""
    from sd_studio.engine.generate import default_models, generate
    from sd_studio.engine.restore.refine import RefineSettings, refine_in_tiles
    from sd_studio.engine.restore.result import compose_in_bands

    cache = models if models is not None else default_models()
    result = generate(request, progress=progress, cancel=cancel, models=cache)
    if request.engine == "classical" or not request.model:
        return result
    native = request.resolution or cache.get(request.model, device=request.device, precision=request.precision,
                                             progress=progress).native_resolution
    if max(result.region.width, result.region.height) <= LARGE * native:
        return result
    images, params = [], []
    for i, patch in enumerate(result.images):
        first = np.array(request.image[result.region.slices][..., :3])
        compose_in_bands(first, patch)
        settings = RefineSettings(model=request.model, prompt=request.prompt, negative_prompt=request.negative_prompt,
                                  strength=refine_strength, steps=request.steps, guidance=request.guidance,
                                  seed=result.seeds[i], scheduler=request.scheduler, device=request.device,
                                  precision=request.precision)
        refined, refine_params = refine_in_tiles(np.ascontiguousarray(first), settings, progress=progress,
                                                 cancel=cancel, models=cache)
        out = patch.copy()
        visible = out[..., 3] > 0
        out[..., :3][visible] = refined[visible]
        images.append(out)
        p = dict(result.parameters[i]) if i < len(result.parameters) else {}
        p.update({"Refine strength": refine_strength, "Tile size": refine_params["Tile size"],
                  "Tile padding": refine_params["Tile padding"]})
        params.append(p)
    return dataclasses.replace(result, images=images, parameters=params)
