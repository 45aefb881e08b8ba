"""The scratch and dust detector: drawn damage is found, photo edges, texture and text are not taken for it."""

from __future__ import annotations

import numpy as np
import pytest
from damage_synth import damage, scan_of, scores

from sd_studio.engine.damage import find_damage, thresholds
from sd_studio.errors import Cancelled, GenerationError


def _paper(h: int = 400, w: int = 600, seed: int = 0) -> np.ndarray:
    """A smooth print: a soft gradient with film grain (sigma 2 grey levels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 90 + 80 * (x / w) + 30 * np.sin(y / 60.0)
    grain = rng.normal(0, 2.0, (h, w)).astype(np.float32)
    grey = np.clip(base + grain, 0, 255).astype(np.uint8)
    return np.dstack([grey, grey, grey])


def _stroke(image: np.ndarray, draw, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    strength = np.zeros(image.shape[:2], np.float32)
    draw(strength)
    del cv2
    out = np.clip(image.astype(np.float32) + contrast * strength[..., None], 0, 255).astype(np.uint8)
    return out, strength >= 0.25


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("contrast", [90, -90])
@pytest.mark.parametrize("angle", [0, 17, 45, 90, 128])
def test_straight_scratches_of_1_to_3_px_bright_and_dark_in_any_direction_are_found(width, contrast, angle):
    import cv2

    image = _paper()
    c, r = np.array([300, 200]), 150
    d = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))]) * r
    p0, p1 = tuple(int(v) for v in c - d), tuple(int(v) for v in c + d)
    damaged, truth = _stroke(image, lambda s: cv2.line(s, p0, p1, 1.0, width, cv2.LINE_AA), contrast)
    found = find_damage(damaged, 0.5) > 0
    assert found[truth].mean() >= 0.9
    assert found[~_near(truth, 3)].mean() <= 0.002


def test_curved_hairs_are_found():
    import cv2

    image = _paper()
    t = np.linspace(0, 1, 120)
    points = np.stack([80 + 440 * t, 200 + 90 * np.sin(7 * t)], 1).astype(np.int32)
    damaged, truth = _stroke(image, lambda s: cv2.polylines(s, [points], False, 1.0, 1, cv2.LINE_AA), 80)
    found = find_damage(damaged, 0.5) > 0
    assert found[truth].mean() >= 0.9


def test_dust_specks_are_found():
    import cv2

    image = _paper()
    rng = np.random.default_rng(3)
    spots = [(int(rng.integers(20, 580)), int(rng.integers(20, 380)), int(rng.integers(1, 4))) for _ in range(60)]

    def draw(s):
        for x, y, r in spots:
            cv2.circle(s, (x, y), r, 1.0, -1, cv2.LINE_AA)

    damaged, truth = _stroke(image, draw, -100)
    found = find_damage(damaged, 0.5) > 0
    assert found[truth].mean() >= 0.9
    assert found[~_near(truth, 3)].mean() <= 0.002


def _near(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def test_strong_edges_and_shapes_are_not_damage():
    import cv2

    image = _paper()
    cv2.rectangle(image, (50, 50), (250, 300), (20, 20, 20), -1)
    cv2.circle(image, (420, 200), 110, (240, 240, 240), -1)
    cv2.rectangle(image, (300, 320), (590, 390), (200, 200, 200), -1)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    assert (find_damage(image, 0.5) > 0).mean() <= 0.01


def test_text_is_not_damage():
    from PIL import Image, ImageDraw, ImageFont

    page = Image.fromarray(_paper())
    draw = ImageDraw.Draw(page)
    for i, size in enumerate((14, 18, 24, 32)):
        font = ImageFont.load_default(size=size)
        draw.text((20, 20 + i * 90), "Grandma's 80th birthday, June 1952 - Lake Como", fill=(25, 25, 25), font=font)
    found = find_damage(np.asarray(page), 0.5) > 0
    assert found.mean() <= 0.01


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_clean_photos_raise_few_false_alarms(name):
    assert (find_damage(scan_of(name), 0.5) > 0).mean() <= 0.01


def test_damage_drawn_on_a_real_photo_is_mostly_found_with_few_false_alarms():
    damaged, bad, clean = damage(scan_of("chelsea"), seed=1)
    recall, false_alarms = scores(find_damage(damaged, 0.5), bad, clean)
    assert recall >= 0.85
    assert false_alarms <= 0.01


def test_sensitivity_finds_more_as_it_rises():
    damaged, bad, _ = damage(scan_of("astronaut", scale=2), seed=2)
    low, high = (find_damage(damaged, s) > 0 for s in (0.1, 0.9))
    assert high[bad].mean() > low[bad].mean()
    assert high.sum() > low.sum()


def test_bad_input_and_cancel():
    with pytest.raises(GenerationError, match="sensitivity"):
        thresholds(1.5)
    with pytest.raises(GenerationError, match="uint8"):
        find_damage(np.zeros((20, 20), np.uint8))
    with pytest.raises(Cancelled):
        find_damage(_paper(100, 100), cancel=lambda: True)
    assert find_damage(_paper(5, 5)).shape == (5, 5)
    assert find_damage(_paper(100, 120)).dtype == np.uint8
