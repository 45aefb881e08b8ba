"""generate(): classical and diffusion runs end to end on real (tiny) inputs and models."""

from __future__ import annotations

import numpy as np
import pytest

from sd_studio.document.geometry import Bounds
from sd_studio.engine.generate import generate
from sd_studio.engine.request import GenerationRequest, Progress
from sd_studio.errors import Cancelled, GenerationError


def _scratched(h: int = 120, w: int = 160):
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[50:54, 20:140] = 255
    scratched = clean.copy()
    scratched[mask > 0] = (255, 255, 255)
    return clean, scratched, mask


def _far_from(mask: np.ndarray, distance: int) -> np.ndarray:
    import cv2

    size = 2 * distance + 1
    return cv2.dilate(mask, np.ones((size, size), np.uint8)) == 0


def test_classical_inpaint_removes_the_scratch_and_keeps_the_rest():
    clean, scratched, mask = _scratched()
    events: list[Progress] = []
    result = generate(GenerationRequest("inpaint", image=scratched, mask=mask, seed=7, feather=3), progress=events.append)
    assert result.region.width % 8 == 0 and Bounds(0, 0, 160, 120).contains(result.region)
    assert result.seeds == [7]
    out = result.composite_onto(scratched)
    assert out.shape == (120, 160, 4)
    hole = mask > 0
    assert np.abs(out[..., :3][hole].astype(int) - clean[hole]).mean() < 10
    far = _far_from(mask, 3)
    assert np.array_equal(out[..., :3][far], scratched[far])
    p = result.parameters[0]
    assert p["sampler"] == "Telea" and p["model"] == "classical" and p["seed"] == 7
    assert "Sampler: Telea" in result.parameters_text(0)
    assert events and events[-1].step == events[-1].total


def test_classical_navier_stokes_and_variants_get_consecutive_seeds():
    _, scratched, mask = _scratched()
    result = generate(GenerationRequest("inpaint", image=scratched, mask=mask, seed=100, variants=3, scheduler="Navier-Stokes"))
    assert result.seeds == [100, 101, 102]
    assert [p["seed"] for p in result.parameters] == [100, 101, 102]
    assert all(p["sampler"] == "Navier-Stokes" for p in result.parameters)
    assert len(result.images) == 3


def test_classical_refuses_img2img_and_an_empty_mask():
    _, scratched, mask = _scratched()
    with pytest.raises(GenerationError, match="needs a diffusion model"):
        generate(GenerationRequest("img2img", image=scratched))
    with pytest.raises(GenerationError, match="empty"):
        generate(GenerationRequest("inpaint", image=scratched, mask=np.zeros_like(mask)))


def test_a_tiny_image_is_refused():
    with pytest.raises(GenerationError, match="at least 8 x 8"):
        generate(GenerationRequest("inpaint", image=np.zeros((5, 40, 3), np.uint8), mask=np.full((5, 40), 255, np.uint8)))


def test_cancel_before_work_raises_and_returns_nothing():
    _, scratched, mask = _scratched()
    with pytest.raises(Cancelled):
        generate(GenerationRequest("inpaint", image=scratched, mask=mask), cancel=lambda: True)
