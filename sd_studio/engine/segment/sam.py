"""SamPredictor: a Segment Anything model answering points and boxes, with one image embedding per picture.

The image encoder (a ViT: seconds on a laptop) runs once per picture; the embeddings of the last few
pictures are kept by a key the caller gives (the editor's document version) or by the pixels' digest.
Each click then costs only the prompt encoder and the mask decoder (tens of milliseconds).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.engine.segment.frame import SamFrame
from sd_studio.engine.segment.prompt import MaskPrompt
from sd_studio.engine.segment.sam_files import TIED, SamSource, original_to_transformers
from sd_studio.engine.segment.selection import Selection
from sd_studio.errors import Cancelled, ModelError

if TYPE_CHECKING:
    from sd_studio.engine.request import CancelCallback, ProgressCallback

EMBEDDINGS_KEPT = 3
"""Pictures whose embedding stays cached (undo and redo between them cost nothing)."""

SUBJECT_OFFSETS = ((0.0, 0.0), (-0.12, 0.0), (0.12, 0.0), (0.0, -0.12), (0.0, 0.12))
"""Where "select subject" asks the model, as fractions of the image from its centre."""


@dataclass(frozen=True)
class Embedding:
    """One picture as the mask decoder needs it: its frame and the image encoder's features."""

    frame: SamFrame
    features: Any  # torch.Tensor (1, C, g, g)


def load_sam_model(source: SamSource, device: str = "auto"):
    """A transformers SamModel with the source's weights, in eval mode on the device (float32); ModelError if they do not fit."""
    import torch
    from safetensors.torch import load_file
    from transformers import SamConfig, SamModel

    from sd_studio.engine.models.devices import choose_device

    dev, dtype = choose_device(device, "fp32")
    try:
        config = SamConfig.from_dict(dict(source.config))
    except Exception as exc:  # noqa: BLE001 - a config that transformers refuses is a bad model file
        raise ModelError(f"{source.name} has a configuration SamModel cannot use ({_first_line(exc)}).") from None
    state: dict = {}
    for file in source.files:
        try:
            tensors = load_file(str(file))
        except Exception:  # noqa: BLE001 - safetensors' own errors are not sentences
            raise ModelError(f"{file.name} is not a readable .safetensors file; it may be truncated or corrupt.") from None
        for key, value in tensors.items():
            if source.layout == "original":
                if key in ("pixel_mean", "pixel_std"):
                    continue  # the original keeps its normalisation as weights; SamFrame applies it
                key = original_to_transformers(key)
            state[key] = value.to(dtype)
    for a, b in (TIED, TIED[::-1]):
        if a not in state and b in state:
            state[a] = state[b]
    with torch.device("meta"):
        model = SamModel(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        missing = [k for k in model.state_dict() if k not in state]
        detail = f"{len(missing)} tensors missing, such as {missing[0]}" if missing else _first_line(exc)
        raise ModelError(f"{source.name} does not fit a Segment Anything model of its own shape ({detail}).") from None
    return model.to(dev).eval()


def _selection(frame: SamFrame, logits: np.ndarray, score: float, keep: list[tuple[float, float]]) -> Selection:
    """The image-sized, tidied Selection of one low-res answer; pieces under the keep points (image coordinates) stay."""
    from sd_studio.engine.segment.tidy import tidy_mask

    sx, sy = frame.scale
    local = [(int(x * sx), int(y * sy)) for x, y in keep]
    bounds, pixels = frame.mask(logits, clean=lambda inside: tidy_mask(inside, local))
    return Selection.from_array(pixels, "sam", origin=(bounds.x, bounds.y), extent=frame.image, score=score,
                                low_res=logits.copy())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def image_key(image: np.ndarray) -> str:
    """A digest of an image's pixels: the embedding cache's key when the caller has no version of its own."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


class SamPredictor:
    """A loaded Segment Anything model; `select` answers a prompt, `subject` finds the main object of a picture."""

    def __init__(self, source: SamSource, device: str = "auto") -> None:
        self.source = source
        self.name = source.name
        self.model = load_sam_model(source, device)
        self.device = str(next(self.model.parameters()).device)
        self.side = int(self.model.config.vision_config.image_size)
        self._embeddings: OrderedDict[Hashable, Embedding] = OrderedDict()
        self._positions = None

    # -- the picture -----------------------------------------------------------------------
    def has_embedding(self, key: Hashable) -> bool:
        """True when the picture with that key needs no image encoder run."""
        return key in self._embeddings

    def embedding(self, image: np.ndarray, key: Hashable | None = None,
                  progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Embedding:
        """The picture's embedding: from the cache when key (default: the pixels' digest) was seen, else computed."""
        import torch

        from sd_studio.engine.request import Progress

        key = image_key(image) if key is None else key
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        frame = SamFrame(Extent(image.shape[1], image.shape[0]), self.side)
        pixels = torch.from_numpy(frame.pixels(image)).to(self.device)
        layers = list(self.model.vision_encoder.layers)

        def before_layer(index: int):
            def hook(_module, _args):
                if cancel is not None and cancel():
                    raise Cancelled("Cancelled; the mask was not changed.")
                if progress is not None:
                    progress(Progress("analysing", index, len(layers), message="Analysing the picture"))
            return hook

        handles = [layer.register_forward_pre_hook(before_layer(i)) for i, layer in enumerate(layers)]
        try:
            with torch.inference_mode():
                features = self.model.get_image_embeddings(pixels)
        finally:
            for handle in handles:
                handle.remove()
        if progress is not None:
            progress(Progress("analysing", len(layers), len(layers), message="Analysing the picture"))
        embedded = Embedding(frame, features)
        self._embeddings[key] = embedded
        while len(self._embeddings) > EMBEDDINGS_KEPT:
            self._embeddings.popitem(last=False)
        return embedded

    # -- prompts ---------------------------------------------------------------------------
    def select(self, image: np.ndarray, prompt: MaskPrompt, key: Hashable | None = None,
               progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Selection:
        """The object the prompt (image coordinates, already checked) points at, as a Selection of the image's size.

        One positive point alone is ambiguous (a shirt, the person, the group), so the model gives three
        masks and the one it rates best is taken; several points or a box are not, and give one mask.
        """
        embedded = self.embedding(image, key, progress, cancel)
        frame = embedded.frame
        points = [frame.point(p.x, p.y) for p in prompt.points]
        labels = [1 if p.positive else 0 for p in prompt.points]
        box = frame.box(prompt.box) if prompt.box is not None else None
        multimask = len(points) == 1 and box is None and prompt.previous is None
        low_res, scores = self._decode(embedded, [points] if points else None, [labels] if points else None,
                                       box, prompt.previous, multimask)
        best = int(np.argmax(scores[0]))
        logits = low_res[0, best]
        return _selection(frame, logits, float(scores[0, best]), [(p.x, p.y) for p in prompt.positives])

    def subject(self, image: np.ndarray, key: Hashable | None = None,
                progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Selection:
        """The picture's main object: the largest well-rated segment around its centre (see subject.pick_subject)."""
        from sd_studio.engine.segment.subject import pick_subject

        embedded = self.embedding(image, key, progress, cancel)
        frame = embedded.frame
        width, height = frame.image
        groups = [[frame.point(width * (0.5 + dx), height * (0.5 + dy))] for dx, dy in SUBJECT_OFFSETS]
        low_res, scores = self._decode(embedded, groups, [[1]] * len(groups), None, None, True)
        candidates = low_res.reshape(-1, *low_res.shape[-2:])
        best = pick_subject(candidates, scores.reshape(-1), self._low_res_extent(frame, candidates.shape[-1]))
        logits = candidates[best]
        return _selection(frame, logits, float(scores.reshape(-1)[best]), [(width / 2, height / 2)])

    def _low_res_extent(self, frame: SamFrame, size: int) -> Extent:
        """The part of the decoder's (size x size) grid that shows the picture (the rest is padding)."""
        factor = frame.side / size
        resized = frame.resized
        return Extent(max(1, round(resized.width / factor)), max(1, round(resized.height / factor)))

    def _decode(self, embedded: Embedding, points, labels, box, previous, multimask: bool):
        """(low-res logits (groups, masks, m, m), scores (groups, masks)) for point groups and/or one box."""
        import torch

        model = self.model
        with torch.inference_mode():
            if self._positions is None:
                self._positions = model.get_image_wide_positional_embeddings()
            kwargs = {
                "input_points": None if points is None else torch.tensor([points], dtype=torch.float32, device=self.device),
                "input_labels": None if labels is None else torch.tensor([labels], dtype=torch.int64, device=self.device),
                "input_boxes": None if box is None else torch.tensor([[box]], dtype=torch.float32, device=self.device),
                "input_masks": None if previous is None else torch.from_numpy(
                    np.ascontiguousarray(previous, np.float32))[None, None].to(self.device),
            }
            sparse, dense = model.prompt_encoder(**kwargs)
            groups = 1 if sparse is None else sparse.shape[1]
            low_res, scores = model.mask_decoder(
                image_embeddings=embedded.features,
                image_positional_embeddings=self._positions,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
        low = low_res.float().cpu().numpy().reshape(groups, -1, *low_res.shape[-2:])
        return low, scores.float().cpu().numpy().reshape(groups, -1)
