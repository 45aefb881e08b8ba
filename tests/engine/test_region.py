"""Region planning and paste-back: the crop holds the mask and its context, and far pixels never change."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.region import (
    RegionPlan,
    compose,
    compose_region,
    crop_for_model,
    mask_bounds,
    match_colour,
    paste_back,
    paste_mask,
    plan_region,
    target_size,
)
from sd_studio.errors import GenerationError


@st.composite
def image_and_box(draw):
    w = draw(st.integers(8, 600))
    h = draw(st.integers(8, 600))
    x0 = draw(st.integers(0, w - 1))
    y0 = draw(st.integers(0, h - 1))
    x1 = draw(st.integers(x0 + 1, w))
    y1 = draw(st.integers(y0 + 1, h))
    return Extent(w, h), Bounds.from_corners(x0, y0, x1, y1)


@settings(max_examples=200, deadline=None)
@given(image_and_box(), st.integers(0, 80), st.sampled_from([64, 512, 768, 1024]))
def test_plan_holds_the_mask_and_its_padding_inside_the_image(case, padding, resolution):
    size, box = case
    mask = np.zeros((size.height, size.width), np.uint8)
    mask[box.slices] = 255
    plan = plan_region(size, mask, padding=padding, resolution=resolution)
    image = Bounds.from_extent(size)
    assert image.contains(plan.bounds)
    assert plan.bounds.contains(box.pad(padding).intersect(image))
    assert plan.bounds.width % 8 == 0 or plan.bounds.width == size.width
    assert plan.bounds.height % 8 == 0 or plan.bounds.height == size.height
    assert plan.target.width % 8 == 0 and plan.target.height % 8 == 0
    assert plan.target.width >= 8 and plan.target.height >= 8
    # Never past what the model needs: about resolution² pixels, long side capped.
    assert plan.target.pixel_count <= (resolution + 8) ** 2
    assert max(plan.target) <= 2 * resolution + 8


@settings(max_examples=100, deadline=None)
@given(st.integers(8, 4000), st.integers(8, 4000), st.sampled_from([512, 768, 1024]))
def test_target_keeps_the_aspect_and_the_native_area(w, h, resolution):
    target = target_size(Extent(w, h), resolution)
    if max(w, h) / min(w, h) <= 3:
        assert abs(target.pixel_count - resolution**2) / resolution**2 < 0.1
        assert abs(target.width / target.height - w / h) / (w / h) < 0.15


def test_whole_image_and_no_mask_plan_the_whole_image():
    size = Extent(300, 200)
    mask = np.zeros((200, 300), np.uint8)
    mask[10:20, 10:20] = 255
    assert plan_region(size, mask, whole_image=True).bounds == Bounds(0, 0, 300, 200)
    assert plan_region(size, None).bounds == Bounds(0, 0, 300, 200)


def test_crop_already_at_native_size_is_not_resampled():
    plan = plan_region(Extent(512, 512), None, resolution=512)
    assert plan.is_identity
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 4), np.uint8)
    rgb, mask = crop_for_model(image, None, plan)
    assert mask is None
    assert np.array_equal(rgb, image[..., :3])


def test_crop_for_model_scales_to_the_target():
    image = np.zeros((1000, 1200, 3), np.uint8)
    mask = np.zeros((1000, 1200), np.uint8)
    mask[400:500, 300:700] = 255
    plan = plan_region(Extent(1200, 1000), mask, padding=32, resolution=512)
    rgb, small = crop_for_model(image, mask, plan)
    assert rgb.shape == (plan.target.height, plan.target.width, 3)
    assert small.shape == (plan.target.height, plan.target.width)


@pytest.mark.parametrize("size", [(7, 100), (100, 7), (0, 0)])
def test_a_tiny_image_is_refused_in_one_sentence(size):
    with pytest.raises(GenerationError, match="at least 8 x 8"):
        plan_region(Extent(*size), None)


def test_an_empty_mask_is_refused():
    with pytest.raises(GenerationError, match="mask is empty"):
        plan_region(Extent(64, 64), np.zeros((64, 64), np.uint8))


def test_a_mask_of_another_size_is_refused():
    with pytest.raises(GenerationError, match="same size"):
        plan_region(Extent(64, 64), np.zeros((32, 64), np.uint8))


def test_mask_bounds():
    mask = np.zeros((50, 60), np.uint8)
    assert mask_bounds(mask).is_empty
    mask[5, 7] = 1
    mask[20, 30] = 200
    assert mask_bounds(mask) == Bounds.from_corners(7, 5, 31, 21)


def _chebyshev_near(mask: np.ndarray, distance: int) -> np.ndarray:
    """Pixels within `distance` of a marked pixel along both axes (a superset of the Euclidean disc)."""
    near = mask > 0
    grown = near.copy()
    h, w = mask.shape
    for dy in range(-distance, distance + 1):
        for dx in range(-distance, distance + 1):
            shifted = np.zeros_like(near)
            shifted[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = near[
                max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)
            ]
            grown |= shifted
    return grown


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 8), st.booleans(), st.booleans())
def test_paste_back_leaves_far_pixels_bit_identical(seed, feather, grey, rgba_source):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(16, 120, size=2)
    source = rng.integers(0, 256, (h, w, 4 if rgba_source else 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.integers(0, w - 1), rng.integers(0, h - 1)
        mask[y0:y0 + rng.integers(1, 20), x0:x0 + rng.integers(1, 20)] = rng.integers(1, 256) if grey else 255
    plan = plan_region(Extent(w, h), mask, padding=feather + 4, resolution=64)
    # "Generated" pixels that differ from the source everywhere, as a VAE round trip might.
    generated = rng.integers(0, 256, (plan.target.height, plan.target.width, 3), np.uint8)
    rgba = paste_back(source, generated, mask, plan, feather=feather)
    assert rgba.shape == (plan.bounds.height, plan.bounds.width, 4)
    assert not rgba[..., :3][rgba[..., 3] == 0].any()
    result = compose_region(source, rgba, plan.bounds)
    far = ~_chebyshev_near(mask, feather)
    assert np.array_equal(result[..., :source.shape[-1]][far], source[far])
    # Inside a fully marked mask the result is the generated pixel (scaled back to the region).
    full = mask == 255
    if full.any():
        region_rgb = rgba[..., :3]
        region_full = full[plan.bounds.slices]
        assert np.array_equal(result[plan.bounds.slices][..., :3][region_full], region_rgb[region_full])


def test_feather_reaches_at_most_feather_pixels_in_euclidean_distance():
    mask = np.zeros((41, 41), np.uint8)
    mask[20, 20] = 255
    plan = RegionPlan(Bounds(0, 0, 41, 41), Extent(40, 40))
    alpha = paste_mask(mask, plan, feather=6)
    yy, xx = np.mgrid[0:41, 0:41]
    distance = np.hypot(yy - 20, xx - 20)
    assert not alpha[distance > 6].any()
    assert (alpha[distance <= 6] > 0).all()
    assert alpha[20, 20] == 255
    # The edge falls off monotonically away from the mask.
    row = alpha[20, 20:27].astype(int)
    assert (np.diff(row) < 0).all()


def test_feather_zero_is_the_mask_itself():
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 4:9] = 128
    plan = RegionPlan(Bounds(0, 0, 32, 32), Extent(32, 32))
    assert np.array_equal(paste_mask(mask, plan, 0), mask)


def test_grey_mask_edge_is_never_brighter_than_the_mask():
    mask = np.zeros((32, 32), np.uint8)
    mask[10:20, 10:20] = 60
    alpha = paste_mask(mask, RegionPlan(Bounds(0, 0, 32, 32), Extent(32, 32)), 4)
    assert alpha.max() == 60
    assert alpha[15, 21] > 0


def test_compose_extremes_are_exact():
    rng = np.random.default_rng(1)
    dest = rng.integers(0, 256, (10, 10, 4), np.uint8)
    dest[..., 3] = rng.integers(1, 256, (10, 10))
    rgba = rng.integers(0, 256, (10, 10, 4), np.uint8)
    rgba[:5, :, 3] = 0
    rgba[:5, :, :3] = 0
    rgba[5:, :, 3] = 255
    before = dest.copy()
    compose(dest, rgba)
    assert np.array_equal(dest[:5], before[:5])
    assert np.array_equal(dest[5:, :, :3], rgba[5:, :, :3])
    assert (dest[5:, :, 3] == 255).all()


def test_compose_half_alpha_blends_rgb():
    dest = np.full((1, 1, 3), 100, np.uint8)
    rgba = np.array([[[200, 200, 200, 128]]], np.uint8)
    compose(dest, rgba)
    assert dest[0, 0, 0] == round((200 * 128 + 100 * 127) / 255)


def test_match_colour_moves_generated_towards_the_surroundings():
    rng = np.random.default_rng(2)
    source = np.clip(rng.normal(100, 10, (64, 64, 3)), 0, 255).astype(np.uint8)
    generated = np.clip(rng.normal(160, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 20:44] = 255
    matched = match_colour(generated, source, mask, ring=8)
    ring = (mask == 0)
    assert abs(matched[ring].mean() - source[ring].mean()) < 3
    assert abs(matched[ring].std() - source[ring].std()) < 3
    assert abs(generated[ring].mean() - source[ring].mean()) > 40


def test_paste_back_with_match_colour_keeps_far_pixels():
    rng = np.random.default_rng(3)
    source = rng.integers(0, 256, (80, 80, 3), np.uint8)
    mask = np.zeros((80, 80), np.uint8)
    mask[30:50, 30:50] = 255
    plan = plan_region(Extent(80, 80), mask, padding=16, resolution=64)
    generated = np.full((plan.target.height, plan.target.width, 3), 250, np.uint8)
    plain = paste_back(source, generated, mask, plan, feather=4)
    matched = paste_back(source, generated, mask, plan, feather=4, match_color=True)
    inside = mask[plan.bounds.slices] == 255
    assert abs(float(matched[..., :3][inside].mean()) - float(source[30:50, 30:50].mean())) < abs(
        float(plain[..., :3][inside].mean()) - float(source[30:50, 30:50].mean())
    )
    assert np.array_equal(matched[..., 3], plain[..., 3])


def test_paste_back_without_mask_covers_the_region():
    source = np.zeros((64, 64, 3), np.uint8)
    plan = plan_region(Extent(64, 64), None, resolution=64)
    generated = np.full((64, 64, 3), 7, np.uint8)
    rgba = paste_back(source, generated, None, plan)
    assert (rgba[..., 3] == 255).all() and (rgba[..., :3] == 7).all()


def test_model_mask_keeps_a_thin_scratch_when_the_crop_shrinks():
    mask = np.zeros((2000, 2000), np.uint8)
    mask[1000, 100:1900] = 255
    mask[1500, 100:1900] = 40
    plan = plan_region(Extent(2000, 2000), mask, padding=32, resolution=512)
    assert plan.target.width < plan.bounds.width // 2
    _, small = crop_for_model(np.zeros((2000, 2000, 3), np.uint8), mask, plan)
    assert set(np.unique(small)) == {0, 255}
    rows = np.flatnonzero(small.max(axis=1))
    assert rows.size >= 2
    # Every row of the small mask that a mark fell in is marked along the mark's length.
    for r in rows:
        assert small[r].sum() // 255 >= 0.9 * 1800 * plan.target.width / plan.bounds.width
