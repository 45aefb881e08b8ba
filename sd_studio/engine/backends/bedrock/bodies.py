"""InvokeModel request and response bodies of Bedrock's image models, as the Bedrock user guide gives them.

Stability AI (the image services, SD 3.5 Large, Stable Image Core and Ultra) answer
{"seeds": [...], "finish_reasons": [null | "Filter reason: ..."], "images": [base64]}; Amazon Nova Canvas
answers {"images": [base64], "error": ...}. Images travel as base64 PNG. Nova Canvas marks the area to
repaint in BLACK (and keeps white), the opposite of our masks and of Stability's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from sd_studio.engine.backends.base import BackendError, clean_text
from sd_studio.engine.backends.images import decode_image, encode_png, from_base64, to_base64

ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")
"""The aspect_ratio values SD 3.5 Large, Stable Image Core and Ultra take for text to image."""

MAX_RESULT_SIDE = 16384
"""A result larger than this on a side is refused before it is decoded."""


@dataclass(frozen=True)
class Inputs:
    """One call's inputs in our terms: prompts, seed, strength, guidance; the image and mask already at the size to send."""

    prompt: str
    negative_prompt: str
    seed: int
    strength: float = 1.0
    guidance: float = 7.0
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    """(h, w) uint8, 255 repaints (inverted here for Nova Canvas)."""
    width: int = 1024
    height: int = 1024
    search_prompt: str = ""
    quality: str = "standard"


def request_body(api: str, mode: str, inputs: Inputs) -> dict:
    """The JSON body for one InvokeModel call of a model of kind `api` in `mode`; BackendError for what it cannot do."""
    if api.startswith("stability") or api == "sd35":
        return _stability_body(api, mode, inputs)
    if api == "nova-canvas":
        return _nova_body(mode, inputs)
    raise BackendError(f"SD Studio cannot call Bedrock models of kind {api!r}.")


def _stability_body(api: str, mode: str, x: Inputs) -> dict:
    body: dict = {"output_format": "png"}
    image = {"image": to_base64(encode_png(x.image))} if x.image is not None else {}
    negative = {"negative_prompt": x.negative_prompt} if x.negative_prompt else {}
    if api == "stability-inpaint":
        body.update(prompt=x.prompt, **image, mask=to_base64(encode_png(x.mask)), seed=x.seed, **negative)
    elif api == "stability-erase":
        body.update(**image, mask=to_base64(encode_png(x.mask)), seed=x.seed)
    elif api == "stability-search-replace":
        body.update(prompt=x.prompt, search_prompt=x.search_prompt, **image, seed=x.seed, **negative)
    elif api == "stability-sketch":
        body.update(prompt=x.prompt, **image, control_strength=round(float(x.strength), 3), seed=x.seed, **negative)
    elif api == "stability-remove-background":
        body.update(**image)
    elif api == "stability-outpaint":
        body.update(**image, seed=x.seed)
    elif api == "stability-upscale":
        body.update(prompt=x.prompt, **image, seed=x.seed, **negative)
    elif api == "stability-fast-upscale":
        body.update(**image)
    elif api == "sd35" and mode == "img2img":
        body.update(prompt=x.prompt, mode="image-to-image", **image, strength=round(float(x.strength), 3),
                    seed=x.seed, **negative)
    elif api in ("sd35", "stability-txt2img") and mode == "txt2img":
        body.update(prompt=x.prompt, aspect_ratio=nearest_aspect_ratio(x.width, x.height), seed=x.seed, **negative)
        if api == "sd35":
            body["mode"] = "text-to-image"
    else:
        raise BackendError(f"This Stability AI model does not run {mode} on Bedrock.")
    return body


def _nova_body(mode: str, x: Inputs) -> dict:
    config = {"numberOfImages": 1, "quality": x.quality, "cfgScale": round(min(10.0, max(1.1, float(x.guidance))), 2),
              "seed": x.seed}
    if mode == "inpaint":
        params = {"image": to_base64(encode_png(x.image)),
                  # Nova Canvas repaints the BLACK pixels and keeps the white ones: our mask, inverted
                  "maskImage": to_base64(encode_png(np.where(x.mask > 0, 0, 255).astype(np.uint8)))}
        if x.prompt:
            params["text"] = x.prompt
        if x.negative_prompt:
            params["negativeText"] = x.negative_prompt
        return {"taskType": "INPAINTING", "inPaintingParams": params, "imageGenerationConfig": config}
    if mode == "txt2img":
        if not x.prompt:
            raise BackendError("Amazon Nova Canvas needs a prompt to draw from.")
        params = {"text": x.prompt}
        if x.negative_prompt:
            params["negativeText"] = x.negative_prompt
        config.update(width=x.width, height=x.height)
        return {"taskType": "TEXT_IMAGE", "textToImageParams": params, "imageGenerationConfig": config}
    raise BackendError(f"Amazon Nova Canvas does not run {mode} here.")


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The aspect_ratio value closest to width:height (compared as logarithms, so 2:1 and 1:2 are equally far)."""
    wanted = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(int(r.split(":")[0]) / int(r.split(":")[1])) - wanted))


def parse_response(api: str, raw: bytes, label: str, mode: str = "RGB") -> list[np.ndarray]:
    """The images of a response body; BackendError when the model filtered the request or sent no image."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise BackendError(f"{label} answered with something that is not JSON.") from None
    if not isinstance(body, dict):
        raise BackendError(f"{label} answered with something that is not a JSON object.")
    if api == "nova-canvas" and body.get("error"):
        raise BackendError(f"{label} refused: {clean_text(body['error'], 200)}.")
    reasons = body.get("finish_reasons") or []
    for reason in reasons if isinstance(reasons, list) else []:
        if reason:
            text = clean_text(reason, 120)
            if "filter" in text.casefold():
                raise BackendError(f"{label} filtered the request ({text}); change the prompt or the image.")
            raise BackendError(f"{label} failed ({text}).", retryable=True)
    images = body.get("images")
    if not isinstance(images, list) or not images:
        raise BackendError(f"{label} sent no image.")
    return [decode_image(from_base64(image, label), MAX_RESULT_SIDE, mode) for image in images]
