"""ComfyUI's wire protocol as its server.py and execution.py speak it: addresses, refusals, previews, history.

Everything a server sends is untrusted: texts are cleaned of control characters and shortened before they
reach a message, images are size-checked before they are decoded.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from sd_studio.engine.backends.base import BackendError, clean_text
from sd_studio.engine.backends.images import decode_image

PREVIEW_IMAGE = 1
"""Binary websocket event: 4-byte image format (1 JPEG, 2 PNG) then the encoded image (server.py BinaryEventTypes)."""

PREVIEW_IMAGE_WITH_METADATA = 4
"""Binary websocket event: 4-byte metadata length, metadata JSON (prompt_id, image_type), then the image."""

MAX_PREVIEW_SIDE = 2048
"""A preview larger than this on a side is ignored rather than decoded."""



@dataclass(frozen=True)
class ServerAddress:
    """A ComfyUI server's base URL (http or https), its websocket URL and a label without secrets."""

    http: str
    """"https://gpu-box:8188" with no trailing slash, no user name, no password, no query."""

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """An address from what the user typed ("gpu-box:8188", "https://host/comfy/"); BackendError if it is not one.

        A user name or password in the URL is refused: they would travel in logs; the token goes in its own box.
        """
        raw = (text or "").strip()
        if not raw:
            raise BackendError("Give the ComfyUI server's address, such as http://127.0.0.1:8188.")
        if "://" not in raw:
            raw = "http://" + raw
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError:
            raise BackendError(f"{clean_text(text)!r} is not a server address such as http://127.0.0.1:8188.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"{clean_text(text)!r} is not an http:// or https:// server address.")
        if parts.username or parts.password:
            raise BackendError("Put the server's token in the token box, not in its address.")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host if port is None else f"{host}:{port}"
        return cls(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")))

    @property
    def websocket(self) -> str:
        """The same server's ws:// or wss:// base URL."""
        return "wss" + self.http[5:] if self.http.startswith("https") else "ws" + self.http[4:]

    @property
    def label(self) -> str:
        """"gpu-box:8188" (and its path, if any), as the user knows the server."""
        parts = urlsplit(self.http)
        return parts.netloc + parts.path

    def url(self, path: str) -> str:
        """The URL of one of the server's routes ("/prompt", "/history/ID")."""
        return self.http + path


def refusal(body: object, label: str) -> BackendError:
    """The sentence for a POST /prompt that came back 400: a missing node, or the node errors ComfyUI found.

    ComfyUI answers {"error": {"type", "message", "details", "extra_info"}, "node_errors": {id: {"class_type",
    "errors": [{"type", "message", "details"}]}}}.
    """
    error = body.get("error") if isinstance(body, dict) else None
    node_errors = body.get("node_errors") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "missing_node_type":
        extra = error.get("extra_info") if isinstance(error.get("extra_info"), dict) else {}
        node = extra.get("class_type") or error.get("message") or "a node"
        return BackendError(f"The ComfyUI server at {label} lacks the node {clean_text(node, 80)}; "
                            "install it there (or update ComfyUI) and try again.")
    details = []
    if isinstance(node_errors, dict):
        for node_id, entry in list(node_errors.items())[:3]:
            if not isinstance(entry, dict):
                continue
            for problem in (entry.get("errors") or [])[:2]:
                if isinstance(problem, dict):
                    text = problem.get("details") or problem.get("message") or problem.get("type")
                    details.append(f"{clean_text(entry.get('class_type', node_id), 60)}: {clean_text(text, 160)}")
    if not details and isinstance(error, dict):
        details.append(clean_text(error.get("message") or error.get("type") or "no reason given", 200))
    elif not details:
        details.append("no reason given")
    return BackendError(f"The ComfyUI server at {label} refused the job ({'; '.join(details)}).")


@dataclass(frozen=True)
class Preview:
    """A live preview frame: the prompt it belongs to when the server says so, and its RGB pixels."""

    prompt_id: str | None
    pixels: np.ndarray


def parse_preview(frame: bytes) -> Preview | None:
    """A binary websocket frame as a Preview, or None for frames of other kinds or images too large or broken."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    prompt_id = None
    if event == PREVIEW_IMAGE:
        data = frame[8:]
    elif event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", frame[4:8])
        if length > 65536 or 8 + length > len(frame):
            return None
        try:
            meta = json.loads(frame[8 : 8 + length])
        except ValueError:
            return None
        prompt_id = meta.get("prompt_id") if isinstance(meta, dict) else None
        data = frame[8 + length :]
    else:
        return None
    try:
        pixels = decode_image(data, MAX_PREVIEW_SIDE)
    except BackendError:
        return None
    return Preview(prompt_id if isinstance(prompt_id, str) else None, pixels)


@dataclass(frozen=True)
class Outcome:
    """What /history says of a prompt: finished or not, its error if it failed, and its output images."""

    completed: bool
    error: str | None
    images: tuple[tuple[str, str, str], ...]
    """(filename, subfolder, type) of each image of the output node asked for, in order."""


def read_history(history: object, prompt_id: str, output_node: str) -> Outcome | None:
    """The outcome of `prompt_id` in a GET /history/{id} answer, or None when the server has no record of it.

    Entries are {"prompt": [...], "outputs": {node: {"images": [{filename, subfolder, type}]}}, "status":
    {"status_str": "success" | "error", "completed": bool, "messages": [[event, data], ...]}}; servers
    older than the status field report outputs only.
    """
    if not isinstance(history, dict) or not isinstance(history.get(prompt_id), dict):
        return None
    entry = history[prompt_id]
    status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    error = None
    if status.get("status_str") == "error":
        error = "the job failed on the server"
        for message in status.get("messages") or []:
            if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
                error = execution_error_text(message[1])
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
    node = outputs.get(output_node) if isinstance(outputs.get(output_node), dict) else {}
    images = []
    for image in node.get("images") or []:
        if isinstance(image, dict) and isinstance(image.get("filename"), str):
            images.append((image["filename"], str(image.get("subfolder") or ""), str(image.get("type") or "output")))
    completed = bool(status.get("completed", True)) or error is not None
    return Outcome(completed=completed, error=error, images=tuple(images))


def execution_error_text(data: object) -> str:
    """An execution_error message's data as "KSampler: CUDA out of memory" (cleaned, short)."""
    if not isinstance(data, dict):
        return "the job failed on the server"
    node = clean_text(data.get("node_type") or data.get("node_id") or "a node", 60)
    message = clean_text(data.get("exception_message") or data.get("exception_type") or "failed", 200)
    return f"{node}: {message}"


def queued_prompt_ids(queue: object) -> tuple[set[str], set[str]]:
    """(running, pending) prompt ids from a GET /queue answer; items are [number, prompt_id, prompt, extra, outputs]."""
    def ids(items) -> set[str]:
        found = set()
        for item in items if isinstance(items, list) else []:
            if isinstance(item, (list, tuple)) and len(item) > 1 and isinstance(item[1], str):
                found.add(item[1])
        return found

    if not isinstance(queue, dict):
        return set(), set()
    return ids(queue.get("queue_running")), ids(queue.get("queue_pending"))


def describe_device(stats: object) -> str:
    """GET /system_stats's first device as "NVIDIA GeForce RTX 4090, 24.0 GiB" (or "cpu")."""
    devices = stats.get("devices") if isinstance(stats, dict) else None
    if not isinstance(devices, list) or not devices or not isinstance(devices[0], dict):
        return "unknown device"
    device = devices[0]
    name = clean_text(device.get("name") or device.get("type") or "unknown device", 80)
    # ComfyUI names CUDA devices "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync"
    name = re.sub(r"^cuda:\d+\s+", "", name).split(" : ")[0]
    vram = device.get("vram_total")
    if isinstance(vram, (int, float)) and vram > 0 and device.get("type") != "cpu":
        return f"{name}, {vram / 2**30:.1f} GiB"
    return name
