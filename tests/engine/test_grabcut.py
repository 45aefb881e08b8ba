"""GrabCut without a model: a drawn object on a textured background, bounded work on big photos, seeds, tidying."""

from __future__ import annotations

import numpy as np
import pytest
from segment_data import disc_photo

from sd_studio.document.geometry import Bounds
from sd_studio.engine.segment.grabcut import WORK_PIXELS, grabcut_select, grabcut_subject
from sd_studio.engine.segment.prompt import PromptPoint
from sd_studio.engine.segment.refine import upscale_mask
from sd_studio.engine.segment.tidy import tidy_mask
from sd_studio.errors import Cancelled


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def around(centre: tuple[int, int], radius: int, pad: int) -> Bounds:
    x, y = centre
    return Bounds.from_corners(x - radius - pad, y - radius - pad, x + radius + pad, y + radius + pad)


def test_grabcut_selects_a_drawn_disc_on_a_textured_background():
    image, truth = disc_photo(480, 360, (250, 170), 90)
    selection = grabcut_select(image, around((250, 170), 90, 25))
    assert selection.method == "grabcut"
    assert iou(selection.to_array() > 127, truth) >= 0.9


def test_a_big_photo_is_cut_at_a_bounded_size_and_its_edge_refined_at_full_size(monkeypatch):
    import cv2

    sizes = []
    real = cv2.grabCut

    def spy(image, *args):
        sizes.append(image.shape[0] * image.shape[1])
        return real(image, *args)

    monkeypatch.setattr(cv2, "grabCut", spy)
    centre, radius = (3900, 1600), 1100
    image, truth = disc_photo(6000, 4000, centre, radius)
    selection = grabcut_select(image, around(centre, radius, 150))
    assert sizes and max(sizes) <= WORK_PIXELS
    mask = selection.to_array() > 127
    assert mask.shape == (4000, 6000)
    assert iou(mask, truth) >= 0.9
    # The refined outline lies on the disc's: few pixels wrong along 6900 pixels of edge.
    assert (mask ^ truth).sum() < 2 * 2 * np.pi * radius


def test_the_refined_edge_beats_a_plain_upscale():
    import cv2

    image, truth = disc_photo(1600, 1200, (800, 600), 400)
    small = cv2.resize(truth.astype(np.uint8) * 255, (200, 150), interpolation=cv2.INTER_AREA)
    small = np.where(small >= 128, 255, 0).astype(np.uint8)
    plain = cv2.resize(small.astype(np.float32), (1600, 1200), interpolation=cv2.INTER_LINEAR) >= 127.5
    refined = upscale_mask(small, image) > 127
    assert (refined ^ truth).sum() < 0.5 * (plain ^ truth).sum()


def test_seed_points_keep_one_object_and_drop_another_in_the_same_box():
    import cv2

    image, red = disc_photo(500, 300, (150, 150), 70)
    blue = np.zeros((300, 500), np.uint8)
    cv2.circle(blue, (340, 150), 70, 255, -1)
    image[blue > 0] = (60, 80, 200)
    box = Bounds.from_corners(60, 60, 430, 240)
    both = grabcut_select(image, box).to_array() > 127
    assert both[150, 340] and both[150, 150]
    only_red = grabcut_select(image, box, [PromptPoint(150, 150), PromptPoint(340, 150, positive=False)])
    mask = only_red.to_array() > 127
    assert not mask[blue > 0].any()
    assert iou(mask, red) >= 0.9


def test_select_subject_without_a_model_finds_a_centred_object():
    image, truth = disc_photo(640, 480, (330, 250), 140)
    selection = grabcut_subject(image)
    assert iou(selection.to_array() > 127, truth) >= 0.9
    background = selection.inverted().to_array() > 127
    assert np.array_equal(background, ~(selection.to_array() > 127))


def test_a_box_over_the_whole_picture_still_works():
    image, truth = disc_photo(300, 200, (150, 100), 60)
    selection = grabcut_select(image, Bounds(0, 0, 300, 200))
    assert iou(selection.to_array() > 127, truth) >= 0.8


def test_grabcut_listens_to_cancel():
    image, _ = disc_photo(300, 200, (150, 100), 60)
    with pytest.raises(Cancelled):
        grabcut_select(image, Bounds(50, 20, 200, 160), cancel=lambda: True)


def test_tidying_drops_specks_and_fills_pinholes_but_keeps_what_a_point_asked_for():
    mask = np.zeros((200, 200), bool)
    mask[20:180, 20:180] = True
    mask[100:103, 100:103] = False  # a pinhole
    mask[5:7, 190:192] = True  # a speck
    mask[190:193, 5:8] = True  # another speck, under a point
    tidy = tidy_mask(mask, keep=[(6, 191)])
    assert tidy[101, 101] and not tidy[5, 190] and tidy[191, 6]
    holed = np.zeros((200, 200), bool)
    holed[20:180, 20:180] = True
    holed[60:140, 60:140] = False  # a real hole: far more than 1 % of the selection
    assert not tidy_mask(holed)[100, 100]
