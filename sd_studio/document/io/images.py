"""Flat image files in and out: any common image becomes straight RGBA uint8 sRGB, and back.

Reading refuses what it cannot show right instead of guessing: only PNG, JPEG, WebP, TIFF, BMP
and GIF, detected by content (never by extension); a declared size over the pixel limit is refused
before anything is decoded; damaged data is refused rather than shown half grey. Every refusal is
a FileError whose message starts with the path.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, PngImagePlugin

from sd_studio.document.io.atomic import atomic_output
from sd_studio.document.io.oserror import file_error
from sd_studio.errors import FileError

READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
"""The formats open_image reads, in Pillow's names."""

WRITE_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".webp": "WEBP",
    ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
}
"""File extensions save_image writes, and the format each one gets."""

METADATA_KEYS = (
    "parameters", "prompt", "workflow", "invokeai_metadata", "invokeai_graph", "sd-metadata",
    "Dream", "generation_data", "Comment", "Description", "Software",
)
"""PNG text chunks that hold generation metadata (A1111, ComfyUI, InvokeAI, NovelAI, Fooocus...)."""

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, IndexError, TypeError, EOFError, struct.error, zlib.error)
_USER_COMMENT_PREFIXES = {b"UNICODE\0": "unicode", b"ASCII\0\0\0": "utf-8", b"\0" * 8: "utf-8"}


@dataclass
class ImportedImage:
    """An image file's pixels as (height, width, 4) straight RGBA uint8 in sRGB, upright,
    with what the file said about itself."""

    pixels: np.ndarray
    format: str
    mode: str
    icc_converted: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    frames: int = 1

    @property
    def width(self) -> int:
        """Width in pixels, as a viewer shows it (after EXIF orientation)."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, as a viewer shows it (after EXIF orientation)."""
        return int(self.pixels.shape[0])


# -- reading ----------------------------------------------------------------------------------
def open_image(path: str | os.PathLike, max_pixels: int | None = None, *, max_side: int | None = None) -> ImportedImage:
    """Read an image file as upright straight RGBA uint8 sRGB, or raise FileError saying why not.

    The format is detected from the content. Images with more than `max_pixels` pixels (default:
    Pillow's Image.MAX_IMAGE_PIXELS), or wider or taller than `max_side`, are refused from their
    header, before decoding. EXIF orientation is applied; CMYK, 16-bit, greyscale and palette
    images become 8-bit RGBA (16-bit by scaling: 65535 -> 255); an embedded ICC profile is
    converted to sRGB. Animated images give their first frame and the frame count. Generation
    metadata (A1111 `parameters`, ComfyUI `prompt`/`workflow`, ...) is returned raw in `parameters`.
    """
    name = os.fspath(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        kind = os.stat(name).st_mode
        if stat.S_ISDIR(kind):
            raise FileError(f"{name}: cannot open: it is a folder, not a file")
        if not stat.S_ISREG(kind):
            # a pipe would block and a device (/dev/zero) never end
            raise FileError(f"{name}: cannot open: it is not a regular file (a device or a pipe)")
        fp = open(name, "rb")
    except OSError as exc:
        raise file_error(name, exc, "open") from exc
    with fp, warnings.catch_warnings():
        # Pillow warns about corrupt EXIF, odd chunks and big sizes; what matters is decided
        # here (limits checked, damage refused), so its warnings would only be console noise.
        warnings.simplefilter("ignore")
        return _decode(fp, name, limit, max_side)


def _decode(fp, name: str, limit: int | None, max_side: int | None) -> ImportedImage:
    try:
        head = fp.read(32)
    except OSError as exc:
        raise file_error(name, exc, "read") from exc
    if not head:
        raise FileError(f"{name}: the file is empty")
    im = _open_header(fp, name)
    width, height = im.size
    if limit is not None and width * height > limit:
        raise FileError(f"{name}: declares {width} x {height} pixels, more than the limit of {limit:,}")
    if max_side is not None and max(width, height) > max_side:
        raise FileError(
            f"{name}: declares {width} x {height} pixels; sd-studio edits images up to {max_side} pixels on a side"
        )
    mode = _original_mode(im, head)
    try:
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)
        im.load()
    except MemoryError as exc:
        raise FileError(f"{name}: the image is too large to fit in memory") from exc
    except Image.DecompressionBombError as exc:
        raise FileError(f"{name}: a frame declares more pixels than the limit") from exc
    except _DECODE_ERRORS as exc:
        raise FileError(f"{name}: the {im.format} data is damaged or incomplete ({_detail(exc)})") from exc
    icc = im.info.get("icc_profile")
    try:
        metadata = _read_metadata(im)
        pixels, converted = _to_rgba(_upright(im), icc)
    except MemoryError as exc:
        raise FileError(f"{name}: the image is too large to fit in memory") from exc
    except _DECODE_ERRORS as exc:
        raise FileError(f"{name}: the {mode} {im.format} image cannot be converted to RGB ({_detail(exc)})") from exc
    return ImportedImage(pixels, im.format or "", mode, converted, metadata, frames)


def detect_format(path: str | os.PathLike) -> str | None:
    """The READ_FORMATS name of the image format the file's first bytes show, or None (nothing decoded)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a pipe would block
        with open(path, "rb") as fp:
            prefix = fp.read(16)
    except OSError:
        return None
    Image.init()
    for fmt in READ_FORMATS:
        _factory, accept = Image.OPEN[fmt]
        result = accept(prefix) if accept else False
        if result and not isinstance(result, str):
            return fmt
    return None


def _open_header(fp, name: str) -> Image.Image:
    # Image.open() without its own decompression-bomb check (which would refuse before we could
    # apply a caller's higher limit, and word it differently): the same plugin registry, limited
    # to our formats. Opening reads only the header.
    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    failure: BaseException | None = None
    for fmt in READ_FORMATS:
        factory, accept = Image.OPEN[fmt]
        result = accept(prefix) if accept else True
        if not result or isinstance(result, str):  # a str is Pillow's "looks like it, but..."
            continue
        try:
            fp.seek(0)
            return factory(fp, name)
        except _DECODE_ERRORS as exc:
            failure = exc
    if failure is not None:
        raise FileError(f"{name}: the image header is damaged ({_detail(failure)})") from failure
    other = _identify_other(fp)
    supported = "PNG, JPEG, WebP, TIFF, BMP and GIF"
    if other:
        raise FileError(f"{name}: it is a {other} file; sd-studio opens {supported} images")
    raise FileError(f"{name}: not an image in a supported format ({supported})")


def _identify_other(fp) -> str | None:
    # Only to name the format in the refusal; nothing is decoded.
    try:
        fp.seek(0)
        if fp.read(4) == b"PK\x03\x04":
            return "ZIP"
        fp.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(fp) as other:
                return other.format
    except Exception:  # noqa: BLE001 - any failure just means "unknown"
        return None


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return (text if len(text) <= 160 else text[:159] + "…").rstrip(".")


def _original_mode(im: Image.Image, head: bytes) -> str:
    # Pillow reads 16-bit RGB, RGBA and LA PNGs as 8-bit modes; the IHDR's bit depth tells the truth.
    if im.format == "PNG" and len(head) >= 26 and head[12:16] == b"IHDR" and head[24] == 16:
        wide = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}.get(head[25])
        if wide:
            return wide
    return im.mode


def _upright(im: Image.Image) -> Image.Image:
    # A broken EXIF block must not make a readable image unreadable; it then stays as stored.
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - EXIF parsing errors come in every shape
        return im


def _to_rgba(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bool]:
    colour, alpha = _split(im)
    converted = False
    if icc:
        colour, converted = _icc_to_srgb(colour, icc)
    if colour.mode not in ("L", "RGB"):
        colour = colour.convert("RGB")
    rgba = colour.convert("RGBA")  # Pillow's C loops beat numpy's strided channel copies
    if alpha is None:
        return np.array(rgba), converted
    rgba.putalpha(Image.fromarray(alpha, "L"))
    pixels = np.array(rgba)
    # the document stores fully transparent pixels as (0, 0, 0, 0); so do we, for equality
    clear = alpha == 0
    if clear.any():
        pixels[clear] = 0
    return pixels, converted


def _split(im: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """The image as an 8-bit colour image (L, RGB, CMYK or LAB) and its alpha (or None)."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_wide_to_8bit(im), "L"), None
    if mode == "1":
        return im.convert("L"), None
    if mode in ("L", "RGB", "CMYK", "LAB"):
        return im, None
    if mode in ("LA", "La", "PA", "RGBA", "RGBa", "P"):
        if mode == "P" and "transparency" not in im.info:
            return im.convert("RGB"), None
        target = "LA" if mode in ("LA", "La") else "RGBA"
        im = im.convert(target) if im.mode != target else im
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8)
        return im.convert("L" if target == "LA" else "RGB"), alpha
    return im.convert("RGB"), None  # YCbCr, HSV, RGBX...


def _wide_to_8bit(im: Image.Image) -> np.ndarray:
    # Scale, never clip: 16-bit 65535 is white, not 255. "I" (32-bit) images come from 16-bit
    # PNG/TIFF data, so they are read in the 16-bit range; "F" images are taken as 0.0 to 1.0.
    values = np.asarray(im)
    if im.mode == "F":
        return np.rint(np.clip(np.nan_to_num(values.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _icc_to_srgb(colour: Image.Image, icc: bytes) -> tuple[Image.Image, bool]:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return colour, False  # an unreadable profile: the pixels are taken as sRGB
    space = source.profile.xcolor_space.strip()
    wanted = {"RGB": "RGB", "CMYK": "CMYK", "GRAY": "L", "Lab": "LAB"}.get(space)
    if wanted != colour.mode:
        return colour, False  # a profile that does not describe these pixels is ignored
    try:
        srgb = ImageCms.createProfile("sRGB")
        try:
            intent = ImageCms.Intent(ImageCms.getDefaultIntent(source))
        except (ImageCms.PyCMSError, ValueError):
            intent = ImageCms.Intent.PERCEPTUAL
        transform = ImageCms.buildTransform(source, srgb, colour.mode, "RGB", renderingIntent=intent)
        if colour.mode in ("RGB", "L") and _is_srgb(transform, colour.mode):
            return colour, False
        return ImageCms.applyTransform(colour, transform), True
    except (ImageCms.PyCMSError, OSError, ValueError):
        return colour, False


def _is_srgb(transform: ImageCms.ImageCmsTransform, mode: str) -> bool:
    # Names lie ("Linear sRGB", "sRGB-elle-V4-g10"), so ask the transform itself: a profile
    # that maps a probe of colours to themselves (within rounding) is sRGB, and converting
    # would only add rounding noise to the pixels.
    if mode == "L":
        ramp = np.arange(256, dtype=np.uint8)[None, :]
        out = np.asarray(ImageCms.applyTransform(Image.fromarray(ramp, "L"), transform), dtype=np.int16)
        return bool(np.abs(out - ramp[..., None]).max() <= 1)
    levels = np.linspace(0, 255, 9).round().astype(np.uint8)
    probe = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
    out = np.asarray(ImageCms.applyTransform(Image.fromarray(probe, "RGB"), transform), dtype=np.int16)
    return bool(np.abs(out - probe).max() <= 1)


def _read_metadata(im: Image.Image) -> dict[str, str]:
    found: dict[str, str] = {}
    text = getattr(im, "text", None) if im.format == "PNG" else None
    chunks = dict(text) if isinstance(text, dict) else {}
    for key in METADATA_KEYS:
        value = chunks.get(key)
        if isinstance(value, str) and value.strip() and _is_generation_text(key, value, chunks):
            found[key] = value
    try:
        exif = im.getexif()
        comment = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
        ifd0 = dict(exif)
    except Exception:  # noqa: BLE001 - broken EXIF means no metadata, not an unreadable image
        comment, ifd0 = None, {}
    if "parameters" not in found:
        decoded = _decode_user_comment(comment)
        if decoded:
            found["parameters"] = decoded
    # ComfyUI's WebP nodes store "prompt:{json}" / "workflow:{json}" in IFD0 text tags
    for tag in (ExifTags.Base.ImageDescription, ExifTags.Base.Make, ExifTags.Base.Model):
        value = ifd0.get(tag)
        if isinstance(value, str) and ":" in value:
            key, _, rest = value.partition(":")
            if key.lower() in ("prompt", "workflow") and rest.lstrip()[:1] in ("{", "["):
                found.setdefault(key.lower(), rest.strip())
    comment_text = im.info.get("comment") if im.format == "JPEG" else None
    if isinstance(comment_text, bytes):
        comment_text = comment_text.decode("utf-8", "replace")
    if comment_text and "parameters" not in found and _is_generation_text("comment", comment_text, {}):
        # some tools put A1111 text in the JPEG comment instead of EXIF
        found["parameters" if "Steps: " in comment_text else "comment"] = comment_text
    return found


def _is_generation_text(key: str, value: str, chunks: dict) -> bool:
    # Comment, Description and Software are also written by Photoshop, cameras and encoders;
    # they count only in the shapes image generators give them (NovelAI: Software + JSON Comment).
    if key in ("Comment", "comment"):
        stripped = value.strip()
        return stripped.startswith("{") or "Steps: " in stripped
    if key == "Description":
        return str(chunks.get("Comment", "")).lstrip().startswith("{")
    if key == "Software":
        return "novelai" in value.lower()
    return True


def _decode_user_comment(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw.strip("\0 ") or None
    if not isinstance(raw, bytes) or len(raw) <= 8:
        return None
    encoding = _USER_COMMENT_PREFIXES.get(raw[:8])
    body = raw[8:]
    if encoding is None:
        return None
    if encoding == "unicode":
        # piexif (A1111) writes UTF-16 big-endian; some tools write little-endian. Text is mostly
        # ASCII, so the zero byte of each pair shows the order.
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            encoding = "utf-16"
        else:
            even_zeros = body[0::2].count(0)
            odd_zeros = body[1::2].count(0)
            encoding = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
    text = body.decode(encoding, "replace").strip("\0 ")
    return text or None


# -- writing ----------------------------------------------------------------------------------
def save_image(
    path: str | os.PathLike,
    rgba: np.ndarray,
    *,
    format: str | None = None,
    quality: int = 95,
    background: tuple[int, int, int] = (255, 255, 255),
    parameters: str | None = None,
    icc_profile: bytes | None = None,
    text: dict[str, str] | None = None,
) -> None:
    """Write straight RGBA uint8 pixels (height, width, 4) to an image file, atomically.

    The format comes from the extension (.png, .jpg/.jpeg, .webp, .tif/.tiff, .bmp) unless
    `format` names one; another extension raises FileError. PNG, WebP and TIFF keep alpha; JPEG
    and BMP are flattened onto `background`. `quality` (1-100) applies to JPEG and WebP; WebP at
    100 is lossless. `parameters` (A1111 text) goes where A1111 puts it: a PNG `parameters` text
    chunk, or the EXIF UserComment ("UNICODE" + UTF-16BE) of a JPEG or WebP; TIFF and BMP drop it.
    `text` holds other tools' generation metadata by PNG chunk name (ComfyUI `prompt` and
    `workflow`, InvokeAI, NovelAI...: see METADATA_KEYS); a PNG gets each as a text chunk after
    `parameters`, other formats drop them (a key outside METADATA_KEYS raises ValueError).
    Colour: pixels are sRGB (open_image converts embedded profiles to sRGB), so by default no
    profile is embedded and viewers assume sRGB, which is exact; pass `icc_profile` to tag the
    file with another profile that describes the pixels.
    """
    name = os.fspath(path)
    fmt = _write_format(name, format)
    pixels = _check_pixels(rgba)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality is 1 to 100, not {quality}")
    options: dict[str, Any] = {}
    if icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["icc_profile"] = icc_profile
    if fmt == "PNG":
        im = Image.fromarray(pixels, "RGBA")
        chunks = _png_chunks(parameters, text)
        if chunks:
            info = PngImagePlugin.PngInfo()
            for key, value in chunks.items():
                info.add_text(key, value)  # tEXt when Latin-1, else iTXt, like A1111 and ComfyUI
            options["pnginfo"] = info
    elif fmt == "JPEG":
        im = _flatten(pixels, background)
        options.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
        if parameters:
            exif = _user_comment_exif(parameters)
            if len(exif) > 65000:
                raise FileError(
                    f"{name}: the generation parameters ({len(parameters):,} characters) are too long "
                    "for a JPEG's EXIF block; save as PNG or WebP to keep them"
                )
            options["exif"] = exif
    elif fmt == "WEBP":
        im = Image.fromarray(pixels, "RGBA")
        if (pixels[..., 3] == 255).all():
            im = im.convert("RGB")
        options.update(quality=int(quality), lossless=int(quality) == 100, method=4)
        if int(quality) == 100:
            options["exact"] = True
        if parameters:
            options["exif"] = _user_comment_exif(parameters)
    elif fmt == "TIFF":
        im = Image.fromarray(pixels, "RGBA")
        options["compression"] = "tiff_adobe_deflate"
    else:
        im = _flatten(pixels, background)
    with atomic_output(name) as out:
        try:
            im.save(out, format=fmt, **options)
        except OSError as exc:
            if exc.errno is None:
                raise FileError(f"{name}: cannot write the {fmt} file ({_detail(exc)})") from exc
            raise file_error(name, exc, "write") from exc


def _png_chunks(parameters: str | None, text: dict[str, str] | None) -> dict[str, str]:
    chunks = {"parameters": parameters} if parameters else {}
    for key, value in (text or {}).items():
        if key not in METADATA_KEYS:
            raise ValueError(f"{key!r} is not a generation metadata chunk ({', '.join(METADATA_KEYS)})")
        if key != "parameters" and value:
            chunks[key] = str(value)
    return chunks


def _write_format(name: str, format: str | None) -> str:
    if format:
        fmt = format.upper().replace("JPG", "JPEG")
        if fmt not in set(WRITE_FORMATS.values()):
            raise FileError(f"{name}: cannot write {format} files; sd-studio writes PNG, JPEG, WebP, TIFF and BMP")
        return fmt
    ext = Path(name).suffix.lower()
    if ext not in WRITE_FORMATS:
        shown = f"the extension {ext!r}" if ext else "a name without an extension"
        raise FileError(f"{name}: cannot tell the image format from {shown}; use .png, .jpg, .webp, .tif or .bmp")
    return WRITE_FORMATS[ext]


def _check_pixels(rgba: np.ndarray) -> np.ndarray:
    array = np.asarray(rgba)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape[:2]:
        raise ValueError(f"pixels are (height, width, 4) uint8, not {array.shape} {array.dtype}")
    if array.shape[2] == 3:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(array)


def _flatten(rgba: np.ndarray, background: tuple[int, int, int]) -> Image.Image:
    if (rgba[..., 3] == 255).all():
        return Image.fromarray(rgba, "RGBA").convert("RGB")
    alpha = rgba[..., 3:4].astype(np.uint32)
    bg = np.asarray(background[:3], np.uint32)
    mixed = (rgba[..., :3].astype(np.uint32) * alpha + bg * (255 - alpha) + 127) // 255
    return Image.fromarray(mixed.astype(np.uint8), "RGB")


def _user_comment_exif(text: str) -> bytes:
    # piexif's UserComment.dump(text, encoding="unicode"), which A1111 uses: an 8-byte charset
    # prefix then UTF-16 big-endian, in the Exif sub-IFD. Readers (A1111, sd-parsers) expect it.
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + text.encode("utf-16-be")
    return exif.tobytes()
