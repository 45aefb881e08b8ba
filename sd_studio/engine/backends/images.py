"""Images on the wire: PNG/JPEG bytes and base64 text to and from arrays, with sizes checked before decoding."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from sd_studio.engine.backends.base import BackendError


def decode_image(data: bytes, max_side: int, mode: str = "RGB") -> np.ndarray:
    """(h, w, 3) uint8 RGB (or (h, w, 4) for mode "RGBA") from PNG/JPEG/WebP bytes; BackendError if they are
    broken or the image is larger than max_side on a side (checked before decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) > max_side:
                raise BackendError(f"The server sent a {image.size[0]} x {image.size[1]} image; at most "
                                   f"{max_side} pixels a side were expected.")
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BackendError("The server sent an image that cannot be read.") from None


def encode_image(pixels: np.ndarray, fmt: str = "PNG", quality: int = 95) -> bytes:
    """PNG (fast to write: these images are sent, not kept) or JPEG bytes of an (h, w) or (h, w, 3|4) uint8 array."""
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if fmt == "JPEG":
        image.convert("RGB" if image.mode != "L" else "L").save(out, format="JPEG", quality=quality)
    else:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an array (encode_image's default)."""
    return encode_image(pixels, "PNG")


def to_base64(data: bytes) -> str:
    """Base64 text of bytes, as JSON request bodies carry images."""
    return base64.b64encode(data).decode("ascii")


def from_base64(text: object, what: str) -> bytes:
    """Bytes from base64 text; BackendError naming `what` if it is not base64."""
    if not isinstance(text, str):
        raise BackendError(f"{what} sent no image.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BackendError(f"{what} sent an image that is not base64.") from None
