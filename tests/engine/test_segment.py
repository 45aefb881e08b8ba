"""Segment Anything through the user's code path: files, the frame both ways, the embedding cache, prompts and choices."""

from __future__ import annotations

import numpy as np
import pytest
from segment_data import save_tiny_sam, tiny_sam, to_original_layout

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.segment.frame import SamFrame
from sd_studio.engine.segment.prompt import MaskPrompt, PromptError, PromptPoint
from sd_studio.engine.segment.segmenter import NeedsModel, Segmenter
from sd_studio.engine.segment.subject import pick_subject
from sd_studio.errors import Cancelled, ModelError


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    """A tiny SAM saved as a transformers folder."""
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny-sam")


@pytest.fixture(scope="module")
def segmenter(sam_dir):
    """One loaded Segmenter for the module (loading is the user's path; the tests share its cost)."""
    return Segmenter(str(sam_dir))


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class _Spy:
    """Records the keyword inputs of a module's forward calls (with_kwargs pre-hook)."""

    def __init__(self, module) -> None:
        self.calls: list[dict] = []
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, args, kwargs):
        self.calls.append({k: (v.clone() if hasattr(v, "clone") else v) for k, v in kwargs.items()})

    def remove(self) -> None:
        self.handle.remove()


def _count_calls(module) -> list:
    calls: list = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


# -- the frame ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(6000, 4000), (4000, 6000), (1024, 600), (37, 1000), (1, 1), (3000, 2999)])
def test_the_frame_sizes_the_picture_as_transformers_does(size):
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    width, height = size
    expected_h, expected_w = SamImageProcessorPil()._get_preprocess_shape((height, width), 1024)
    assert SamFrame(Extent(width, height)).resized == Extent(expected_w, expected_h)


def test_the_frame_normalises_and_pads_as_transformers_does():
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    image = _photo(1024, 600)  # already at the frame's size: no resampling difference to excuse
    ours = SamFrame(Extent(1024, 600)).pixels(image)
    theirs = SamImageProcessorPil()(images=image, return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape == (1, 3, 1024, 1024)
    assert np.abs(ours - theirs).max() < 1e-5


@pytest.mark.parametrize("size", [(333, 211), (3001, 2003), (640, 1280)])
def test_masks_come_back_to_the_image_exactly_as_transformers_post_processing(size):
    import torch
    import torch.nn.functional as F

    width, height = size
    frame = SamFrame(Extent(width, height))
    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(256, 256)) * 0.5).astype(np.float32)
    logits[60:140, 40:200] += 3  # an object, so the mask has an edge worth comparing
    resized = frame.resized
    up = F.interpolate(torch.from_numpy(logits)[None, None], (1024, 1024), mode="bilinear", align_corners=False)
    up = up[..., : resized.height, : resized.width]
    reference = (F.interpolate(up, (height, width), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()
    bounds, pixels = frame.mask(logits)
    ours = np.zeros((height, width), bool)
    ours[bounds.slices] = pixels > 0
    assert reference.any()
    assert (ours != reference).mean() < 1e-3  # OpenCV interpolates in 1/32-pixel steps, torch exactly
    assert not reference[~_inflate(bounds, width, height)].any()  # nothing selected outside the bounds


def _inflate(bounds: Bounds, width: int, height: int) -> np.ndarray:
    inside = np.zeros((height, width), bool)
    inside[bounds.slices] = True
    return inside


def test_prompts_are_checked_against_the_image():
    extent = Extent(600, 400)
    with pytest.raises(PromptError, match="outside the 600 x 400 image"):
        MaskPrompt((PromptPoint(600.5, 10),)).checked(extent)
    with pytest.raises(PromptError, match="box"):
        MaskPrompt(box=Bounds(700, 10, 50, 50)).checked(extent)
    with pytest.raises(PromptError, match="on their own"):
        MaskPrompt((PromptPoint(5, 5, positive=False),)).checked(extent)
    assert MaskPrompt(box=Bounds(-10, -10, 100, 100)).checked(extent).box == Bounds(0, 0, 90, 90)


# -- prompts reach the model ---------------------------------------------------------------------
def test_points_and_boxes_reach_the_prompt_encoder_in_frame_coordinates(segmenter):
    image = _photo(6000, 4000)
    model = segmenter.predictor().model
    spy = _Spy(model.prompt_encoder)
    try:
        segmenter.select(image, MaskPrompt((PromptPoint(4500.5, 1000.5), PromptPoint(10, 3990, False))), key="p")
        segmenter.select(image, MaskPrompt(box=Bounds.from_corners(1200, 800, 3000, 2600)), key="p")
    finally:
        spy.remove()
    scale = 1024 / 6000, 683 / 4000
    points = spy.calls[0]["input_points"].numpy()[0, 0]
    assert np.allclose(points, [[4500.5 * scale[0] - 0.5, 1000.5 * scale[1] - 0.5],
                                [10 * scale[0] - 0.5, 3990 * scale[1] - 0.5]], atol=1e-3)
    assert spy.calls[0]["input_labels"].tolist() == [[[1, 0]]]
    box = spy.calls[1]["input_boxes"].numpy()[0, 0]
    assert np.allclose(box, [1200 * scale[0] - 0.5, 800 * scale[1] - 0.5, 3000 * scale[0] - 0.5, 2600 * scale[1] - 0.5],
                       atol=1e-3)
    assert spy.calls[1]["input_points"] is None


def test_the_mask_lands_where_the_click_was_on_a_6000_by_4000_photo(segmenter):
    """The decoder is made to answer with a disc around the point it was given (in its own frame); the mask must
    come back as a disc around the click in the photo's pixels, so any slip either way shows."""
    import torch

    model = segmenter.predictor().model
    received = {}
    radius_low = 12  # decoder pixels: 12 * 4 frame pixels = 48 / (1024 / 6000) ≈ 281 photo pixels

    def remember(_module, _args, kwargs):
        received["points"] = kwargs["input_points"][0, 0, 0].clone()

    def disc(_module, _args, output):
        masks, scores = output
        x, y = ((received["points"] + 0.5) / 4 - 0.5).tolist()  # frame -> 256-grid pixel centres
        yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
        logits = radius_low - torch.sqrt((xx - x) ** 2 + (yy - y) ** 2)
        return logits.expand_as(masks).clone(), scores

    handles = [model.prompt_encoder.register_forward_pre_hook(remember, with_kwargs=True),
               model.mask_decoder.register_forward_hook(disc)]
    image = _photo(6000, 4000, seed=3)
    try:
        selection = segmenter.select(image, MaskPrompt((PromptPoint(4500.5, 1000.5),)), key="photo")
    finally:
        for handle in handles:
            handle.remove()
    mask = selection.to_array() > 0
    assert mask.shape == (4000, 6000)
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 4500.5) < 3 and abs(ys.mean() - 1000.5) < 3
    rx, ry = radius_low * 4 * 6000 / 1024, radius_low * 4 * 4000 / 683  # frame pixels -> photo pixels, per axis
    yy, xx = np.mgrid[0:4000, 0:6000]
    truth = ((xx + 0.5 - 4500.5) / rx) ** 2 + ((yy + 0.5 - 1000.5) / ry) ** 2 <= 1
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.98
    assert selection.bounds.contains(Bounds.from_corners(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    assert selection.bounds.width < 800  # only the object's rectangle was worked at full size


def test_one_point_takes_the_best_of_three_masks_and_more_prompts_ask_for_one(segmenter):
    import torch

    model = segmenter.predictor().model
    asked = []

    def three(_module, _args, kwargs, output):
        asked.append(kwargs["multimask_output"])
        masks, scores = output
        fake = torch.full_like(masks, -5.0)
        for i in range(fake.shape[2]):
            fake[:, :, i, 10 + 40 * i: 30 + 40 * i, 10:30] = 5.0  # mask i: a square in its own row
        rated = torch.tensor([0.2, 0.9, 0.5][: fake.shape[2]]).expand_as(scores).clone()
        return fake, rated

    handle = model.mask_decoder.register_forward_hook(three, with_kwargs=True)
    image = _photo(1024, 1024, seed=4)
    try:
        single = segmenter.select(image, MaskPrompt((PromptPoint(500, 500),)), key="q")
        several = segmenter.select(image, MaskPrompt((PromptPoint(500, 500), PromptPoint(100, 100))), key="q")
    finally:
        handle.remove()
    assert asked == [True, False]
    assert single.score == pytest.approx(0.9)
    ys, _ = np.nonzero(single.to_array())
    assert 50 * 4 <= ys.mean() <= 70 * 4  # the second square (rows 50-70 of the decoder's grid)
    assert several.score == pytest.approx(0.2)


def test_the_embedding_is_computed_once_per_picture(segmenter):
    model = segmenter.predictor().model
    calls, handle = _count_calls(model.vision_encoder)
    first, second = _photo(800, 600, seed=5), _photo(800, 600, seed=6)
    try:
        assert segmenter.needs_analysis("v1")
        segmenter.select(first, MaskPrompt((PromptPoint(100, 100),)), key="v1")
        assert not segmenter.needs_analysis("v1")
        segmenter.select(first, MaskPrompt((PromptPoint(300, 100),)), key="v1")
        segmenter.select(first, MaskPrompt(box=Bounds(10, 10, 300, 300)), key="v1")
        segmenter.select_subject(first, key="v1")
        assert len(calls) == 1
        segmenter.select(second, MaskPrompt((PromptPoint(100, 100),)), key="v2")  # the document changed
        assert len(calls) == 2
        segmenter.select(first, MaskPrompt((PromptPoint(100, 100),)), key="v1")  # undo: still cached
        assert len(calls) == 2
        # Without a key the pixels are the key: the same picture costs nothing, a changed one is analysed again.
        segmenter.select(first, MaskPrompt((PromptPoint(100, 100),)))
        segmenter.select(first.copy(), MaskPrompt((PromptPoint(200, 100),)))
        changed = first.copy()
        changed[0, 0] ^= 1
        segmenter.select(changed, MaskPrompt((PromptPoint(100, 100),)))
        assert len(calls) == 4
    finally:
        handle.remove()


def test_a_refining_click_feeds_the_previous_answer_back(segmenter):
    model = segmenter.predictor().model
    image = _photo(640, 480, seed=7)
    first = segmenter.select(image, MaskPrompt((PromptPoint(320, 240),)), key="r")
    assert first.low_res is not None and first.low_res.shape == (256, 256)
    spy = _Spy(model.prompt_encoder)
    try:
        prompt = MaskPrompt((PromptPoint(320, 240),)).with_point(PromptPoint(100, 100, False), previous=first.low_res)
        segmenter.select(image, prompt, key="r")
    finally:
        spy.remove()
    fed = spy.calls[0]["input_masks"].numpy()[0, 0]
    assert np.array_equal(fed, first.low_res)


def test_cancel_during_the_analysis_stops_it_and_caches_nothing(sam_dir):
    segmenter = Segmenter(str(sam_dir))
    seen = []

    def progress(report):
        seen.append(report.phase)

    with pytest.raises(Cancelled):
        segmenter.select(_photo(300, 200), MaskPrompt((PromptPoint(5, 5),)), key="c", progress=progress,
                         cancel=lambda: "analysing" in seen)
    assert segmenter.needs_analysis("c")


# -- subject and background ----------------------------------------------------------------------
def _blob(cx: int, cy: int, r: int, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, 5.0, -5.0).astype(np.float32)


def test_the_subject_is_the_largest_trusted_segment_around_the_centre():
    visible = Extent(64, 48)
    whole = np.full((64, 64), 5.0, np.float32)  # the whole frame: the background's complement, not a subject
    small = _blob(32, 24, 4)
    large = _blob(32, 24, 14)
    off_centre = _blob(8, 8, 6)
    doubtful = _blob(32, 24, 20)
    candidates = np.stack([whole, small, large, off_centre, doubtful])
    scores = np.array([0.95, 0.9, 0.8, 0.9, 0.1])
    assert pick_subject(candidates, scores, visible) == 2
    assert pick_subject(np.stack([whole, off_centre]), np.array([0.9, 0.8]), visible) == 1
    assert pick_subject(np.stack([whole]), np.array([0.9]), visible) == 0


def test_subject_and_background_with_a_model_are_complements(segmenter):
    image = _photo(500, 400, seed=8)
    subject = segmenter.select_subject(image, key="s").to_array()
    background = segmenter.select_background(image, key="s").to_array()
    assert subject.shape == background.shape == (400, 500)
    assert np.array_equal(subject, 255 - background)


# -- model files -----------------------------------------------------------------------------------
def _answers(segmenter: Segmenter, image: np.ndarray) -> np.ndarray:
    return segmenter.select(image, MaskPrompt((PromptPoint(210, 140), PromptPoint(40, 40, False))), key="k").to_array()


def test_a_bare_safetensors_file_loads_with_its_configuration_worked_out(sam_dir, tmp_path, segmenter):
    import shutil

    bare = tmp_path / "my-sam.safetensors"
    shutil.copy(sam_dir / "model.safetensors", bare)
    image = _photo(420, 280, seed=9)
    other = Segmenter(str(bare))
    assert other.predictor().model.config.vision_config.global_attn_indexes == [1]
    assert np.array_equal(_answers(other, image), _answers(segmenter, image))


def test_an_original_segment_anything_checkpoint_loads(sam_dir, tmp_path, segmenter):
    import torch
    from safetensors.torch import save_file

    state = to_original_layout(tiny_sam().state_dict())
    state["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    state["pixel_std"] = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    assert "image_encoder.blocks.0.attn.qkv.weight" in state
    assert "mask_decoder.output_hypernetworks_mlps.0.layers.2.weight" in state
    path = tmp_path / "sam_vit_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    image = _photo(420, 280, seed=9)
    assert np.array_equal(_answers(Segmenter(str(path)), image), _answers(segmenter, image))


def test_pickles_and_other_files_are_refused_in_one_sentence(tmp_path):
    from safetensors.numpy import save_file

    pickle = tmp_path / "sam_vit_b_01ec64.pth"
    pickle.write_bytes(b"\x80\x04not really")
    with pytest.raises(ModelError, match="pickle"):
        Segmenter(str(pickle)).predictor()
    other = tmp_path / "lora.safetensors"
    save_file({"lora_up.weight": np.zeros((2, 2), np.float32)}, str(other))
    with pytest.raises(ModelError, match="not a Segment Anything model"):
        Segmenter(str(other)).predictor()
    binary = tmp_path / "old-sam"
    binary.mkdir()
    (binary / "config.json").write_text('{"model_type": "sam"}')
    (binary / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="pickle"):
        Segmenter(str(binary)).predictor()
    with pytest.raises(ModelError, match="not downloaded"):
        Segmenter("facebook/sam-vit-base").predictor()
    for error in (ModelError,):
        assert error.__doc__


def test_models_are_found_in_folders(sam_dir, tmp_path):
    import shutil

    from sd_studio.engine.segment.sam_files import find_sam_models

    shutil.copytree(sam_dir, tmp_path / "tiny-sam")
    shutil.copy(sam_dir / "model.safetensors", tmp_path / "bare-sam.safetensors")
    (tmp_path / "notes.safetensors").write_bytes(b"junk")
    found = find_sam_models([tmp_path, tmp_path / "missing"])
    assert sorted(s.name for s in found) == ["bare-sam", "tiny-sam"]


# -- without a model -------------------------------------------------------------------------------
def test_without_a_model_points_alone_ask_for_one_and_a_box_uses_grabcut():
    segmenter = Segmenter(None)
    image = _photo(200, 150)
    with pytest.raises(NeedsModel) as raised:
        segmenter.select(image, MaskPrompt((PromptPoint(50, 50),)))
    message = str(raised.value)
    assert "GrabCut" in message and "box" in message and message.count(".") == 1
    selection = segmenter.select(image, MaskPrompt(box=Bounds(40, 30, 100, 80)))
    assert selection.method == "grabcut" and selection.extent == Extent(200, 150)
