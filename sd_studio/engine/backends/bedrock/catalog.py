"""The Bedrock image models SD Studio knows, read from resources/backends/bedrock_models.json: limits and prices.

A model id may come as Bedrock lists it ("stability.stable-image-inpaint-v1:0") or as a cross-region
inference profile ("us.stability.stable-image-inpaint-v1:0"); models served through profiles only are
called through the profile of the client's region.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

from sd_studio.bundled import resource_path
from sd_studio.document.geometry import Extent
from sd_studio.engine.backends.base import BackendError, Cost, clean_text

CATALOG_FILE = resource_path("backends", "bedrock_models.json")

PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")
"""Prefixes of Bedrock's cross-region inference profile ids."""


@dataclass(frozen=True)
class Limits:
    """What an input image and prompt must respect for a model, as its documentation states them."""

    min_side: int
    min_pixels: int
    max_pixels: int
    max_aspect: float
    multiple: int
    max_prompt: int
    max_seed: int
    max_side: int = 100_000

    def fit(self, size: Extent, label: str) -> Extent:
        """The size to send an image of `size` at: scaled into the pixel range, sides a multiple; BackendError when
        its aspect ratio is beyond the model's (no scaling fixes that)."""
        w, h = size
        aspect = max(w, h) / max(1, min(w, h))
        if aspect > self.max_aspect + 1e-9:
            raise BackendError(f"{label} takes images from 1:{self.max_aspect:g} to {self.max_aspect:g}:1; this region "
                               f"is {w} x {h} ({aspect:.1f}:1). Paint a rounder mask or turn on Whole image.")
        scale = 1.0
        if w * h > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (w * h))
        elif w * h < self.min_pixels or min(w, h) < self.min_side:
            scale = max(math.sqrt(self.min_pixels / (w * h)), self.min_side / min(w, h))
        scale = min(scale, self.max_side / max(w, h))
        m = self.multiple
        fitted_w, fitted_h = (max(m, round(w * scale / m) * m), max(m, round(h * scale / m) * m))
        # rounding may step over a limit: nudge down (too many pixels) or up (a side too short)
        while fitted_w * fitted_h > self.max_pixels or max(fitted_w, fitted_h) > self.max_side:
            fitted_w, fitted_h = (fitted_w - m, fitted_h) if fitted_w >= fitted_h else (fitted_w, fitted_h - m)
        while min(fitted_w, fitted_h) < self.min_side or fitted_w * fitted_h < self.min_pixels:
            fitted_w, fitted_h = (fitted_w + m, fitted_h) if fitted_w <= fitted_h else (fitted_w, fitted_h + m)
        return Extent(fitted_w, fitted_h)

    def check_prompt(self, text: str, what: str, label: str) -> None:
        """BackendError when a prompt is longer than the model takes."""
        if len(text) > self.max_prompt:
            raise BackendError(f"{label} takes a {what} of at most {self.max_prompt} characters; this one has "
                               f"{len(text)}.")

    def seed(self, seed: int) -> int:
        """Our seed (0 to 2^32 - 1) in the model's range, the same every time for the same seed."""
        return int(seed) % (self.max_seed + 1)


@dataclass(frozen=True)
class BedrockModel:
    """One Bedrock image model: its id, its name, which request body it takes, the modes it serves, limits, price."""

    id: str
    label: str
    api: str
    modes: tuple[str, ...]
    profile_only: bool
    limits: Limits
    price: object
    """Dollars per image; a {"standard"|"premium": [[max pixels, dollars], ...]} table; or None (unknown)."""

    def invoke_id(self, given: str, region: str) -> str:
        """The id to call: the one given when it names a profile, else this model's profile for `region` when it
        is served through profiles only, else its plain id."""
        if given.startswith(PROFILE_PREFIXES) or not self.profile_only:
            return given
        geography = region.split("-")[0] if region else "us"
        prefix = {"ap": "apac", "us": "us", "eu": "eu"}.get(geography, geography)
        return f"{prefix}.{self.id}"

    def price_per_image(self, size: Extent, quality: str = "standard") -> float | None:
        """Dollars for one image of `size` (None when the table has no price for it)."""
        if isinstance(self.price, (int, float)):
            return float(self.price)
        if isinstance(self.price, dict):
            for max_pixels, dollars in self.price.get(quality, ()):
                if size.pixel_count <= max_pixels:
                    return float(dollars)
        return None

    def cost(self, images: int, size: Extent, quality: str = "standard") -> Cost:
        """What `images` images of `size` cost, with the price list's date; an unknown price says so."""
        per_image = self.price_per_image(size, quality)
        as_of = catalog_data().get("_as_of", "").split(",")[0]
        if per_image is None:
            return Cost(float("nan"), f"{images} image{'s' if images != 1 else ''} of {self.label}: price not in "
                                      "SD Studio's table, see aws.amazon.com/bedrock/pricing")
        return Cost(per_image * images, f"{images} x ${per_image:.3f} ({self.label}, AWS price list of {as_of})")


@lru_cache(maxsize=1)
def catalog_data() -> dict:
    """The catalog file's contents."""
    return json.loads(CATALOG_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def catalog() -> dict[str, BedrockModel]:
    """Every model of the catalog by its plain id."""
    data = catalog_data()
    limits = {name: Limits(**values) for name, values in data["limits"].items()}
    return {
        model_id: BedrockModel(model_id, entry["label"], entry["api"], tuple(entry["modes"]), entry["profile_only"],
                               limits[entry["limits"]], entry["price"])
        for model_id, entry in data["models"].items()
    }


def find_model(model_id: str) -> BedrockModel:
    """The catalog entry for a model id or inference profile id; BackendError naming the known ones otherwise."""
    text = (model_id or "").strip()
    plain = text.rsplit("/", 1)[-1] if text.startswith("arn:") else text
    for prefix in PROFILE_PREFIXES:
        if plain.startswith(prefix):
            plain = plain[len(prefix):]
            break
    models = catalog()
    if plain in models:
        return models[plain]
    known = ", ".join(models)
    raise BackendError(f"SD Studio does not know the Bedrock model {clean_text(text, 80)!r}; it knows {known}.")
