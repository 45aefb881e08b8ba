"""The classical fill removes a scratch without any weights."""

from __future__ import annotations

import numpy as np
import pytest

from sd_studio.engine.classical import fill
from sd_studio.errors import GenerationError


def _gradient(h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_fill_removes_a_drawn_scratch(method):
    clean = _gradient()
    scratched = clean.copy()
    mask = np.zeros(clean.shape[:2], np.uint8)
    mask[40:44, 10:118] = 255
    scratched[mask > 0] = (255, 0, 255)
    filled = fill(scratched, mask, method=method)
    hole = mask > 0
    before = np.abs(scratched[hole].astype(int) - clean[hole]).mean()
    after = np.abs(filled[hole].astype(int) - clean[hole]).mean()
    assert after < before / 10
    assert np.array_equal(filled[~hole], scratched[~hole])


def test_fill_with_empty_mask_is_a_copy():
    image = _gradient(16, 16)
    out = fill(image, np.zeros((16, 16), np.uint8))
    assert np.array_equal(out, image) and out is not image


def test_unknown_method_is_refused():
    with pytest.raises(GenerationError, match="Unknown fill method"):
        fill(_gradient(16, 16), np.zeros((16, 16), np.uint8), method="magic")
