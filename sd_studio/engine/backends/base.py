"""The one interface every engine speaks: what a backend offers, what it is asked, and how a job reports back.

A backend never sees the whole document. generate() plans the region, crops and scales it to the model's
input size and hands the backend a `BackendJob`: the region's RGB pixels, its mask (255 repaints) and the
settings. The backend returns one RGB image of exactly that size per seed; generate() scales it back and
pastes it through the feathered mask, so pixels outside the mask stay bit-for-bit unchanged whatever a
server sends. Local diffusers, ComfyUI servers, Amazon Bedrock and SageMaker all fit behind it.
"""

from __future__ import annotations

import queue
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.engine.request import CancelCallback, Progress, ProgressCallback
from sd_studio.errors import Cancelled, GenerationError

MAX_TEXT = 300
"""Characters of a server's text (an exception message) kept in a sentence for the user."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")

WAIT_SLICE = 0.05
"""Seconds a waiting job sleeps between looks at the cancel flag (cancel answers within this)."""


def clean_text(text: object, limit: int = MAX_TEXT) -> str:
    """A server's text made safe to show: no control or direction characters, one line, at most `limit` characters."""
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class BackendError(GenerationError):
    """A backend could not run a job (unreachable, refused, failed on the server); one sentence for the user.

    `retryable` says whether the same job may succeed when sent again (a dropped connection, a throttled
    service) as opposed to a request the backend will always refuse (a missing model, a bad token).
    """

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as its server or service says: the panel and the CLI check requests against it."""

    modes: tuple[str, ...]
    """The modes it runs: "inpaint", "img2img", "txt2img"."""
    models: tuple[str, ...] = ()
    """The models it offers by the names it takes (checkpoint files, Bedrock model ids, an endpoint)."""
    samplers: tuple[str, ...] = ()
    """Our sampler names (A1111's) it can run; empty when the service picks its own."""
    schedulers: tuple[str, ...] = ()
    """Its own sampler and scheduler names as it lists them (ComfyUI's), for display."""
    max_size: Extent | None = None
    """The largest input it takes, or None when it has no fixed limit."""
    controls: tuple[str, ...] = ()
    """The settings it honours beyond the prompt: "negative prompt", "steps", "guidance", "strength", "seed"."""
    device: str = ""
    """Where it runs, in words: "NVIDIA GeForce RTX 4090, 24.0 GiB" or "Amazon Bedrock, us-west-2"."""


@dataclass(frozen=True)
class BackendJob:
    """One generation at the model input size: run_diffusion's arguments as a value.

    `image` is (height, width, 3) uint8 or None (text to image); `mask` (height, width) uint8 with 255 where
    to repaint, or None outside inpainting. One result per seed, each (height, width, 3) uint8.
    """

    mode: str
    image: np.ndarray | None
    mask: np.ndarray | None
    prompt: str
    negative_prompt: str
    steps: int
    guidance: float
    strength: float
    seeds: tuple[int, ...]
    scheduler: str
    width: int
    height: int
    memory_mode: str = "auto"
    loras: tuple[tuple[str, float], ...] = ()

    @property
    def size(self) -> Extent:
        """The model input size every result must have."""
        return Extent(self.width, self.height)


@dataclass(frozen=True)
class RemoteModel:
    """A model that runs elsewhere, described as generate() needs it: its name and the resolution to plan at."""

    name: str
    native_resolution: int
    hash: str | None = None
    fixed_sizes: tuple[Extent, ...] | None = None
    device: str = "remote"


@dataclass(frozen=True)
class Cost:
    """What a job will cost before it is sent: the amount in US dollars and how it was worked out."""

    dollars: float
    note: str
    """One line: "2 images x $0.040 (Stable Image Inpaint, AWS price list of 2025-06-30)"."""


class Job(ABC):
    """A submitted job: `wait()` reports progress on the caller's thread and returns the images; `cancel()` stops it."""

    @abstractmethod
    def wait(self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> list[np.ndarray]:
        """Block until the job ends; one (h, w, 3) uint8 image per seed, or BackendError/Cancelled."""

    @abstractmethod
    def cancel(self) -> None:
        """Ask the job to stop; wait() then raises Cancelled."""


class DeferredJob(Job):
    """A job that runs in wait(), on the caller's thread (local work that must stay on the engine thread)."""

    def __init__(self, work: Callable[[ProgressCallback | None, CancelCallback], list[np.ndarray]]) -> None:
        self._work = work
        self._cancelled = threading.Event()

    def wait(self, progress=None, cancel=None):
        """Run the work now, stopping when either this job or the caller's flag is cancelled."""
        def stop() -> bool:
            return self._cancelled.is_set() or (cancel is not None and bool(cancel()))

        return self._work(progress, stop)

    def cancel(self) -> None:
        """Ask the running work to stop at its next step."""
        self._cancelled.set()


class EventJob(Job):
    """A job that runs elsewhere (an event loop, a worker thread) and reports through a thread-safe queue.

    The worker calls `report(progress)`, then `finish(images)` or `fail(exc)`; `on_cancel` is called once,
    from the waiting thread, when the caller cancels. wait() delivers progress on the waiting thread, and
    passes what finish() gave through `convert` there (decoding results off the worker's thread).
    """

    def __init__(self, on_cancel: Callable[[], None] | None = None,
                 convert: Callable[[list], list[np.ndarray]] | None = None) -> None:
        self._events: queue.Queue = queue.Queue()
        self._on_cancel = on_cancel
        self._convert = convert
        self._cancel_requested = threading.Event()
        self._cancel_sent = False
        self._unheard = False

    def report(self, progress: Progress) -> None:
        """Queue a progress report (any thread); dropped when the waiter asked for none (no needless wake-ups)."""
        if not self._unheard:
            self._events.put(("progress", progress))

    def finish(self, images: list[np.ndarray]) -> None:
        """End the job with its images (any thread)."""
        self._events.put(("done", images))

    def fail(self, exc: BaseException) -> None:
        """End the job with an error (any thread)."""
        self._events.put(("error", exc))

    @property
    def cancel_requested(self) -> bool:
        """True once the caller asked the job to stop."""
        return self._cancel_requested.is_set()

    def cancel(self) -> None:
        """Ask the job to stop; the waiting thread tells the worker and raises Cancelled."""
        self._cancel_requested.set()

    def wait(self, progress=None, cancel=None):
        """Deliver progress until the job finishes, fails or is cancelled."""
        self._unheard = progress is None
        while True:
            if not self._cancel_sent and (self._cancel_requested.is_set() or (cancel is not None and cancel())):
                self._cancel_sent = True
                self._cancel_requested.set()
                if self._on_cancel is not None:
                    self._on_cancel()
                raise Cancelled("Generation cancelled; nothing was changed.")
            try:
                kind, value = self._events.get(timeout=WAIT_SLICE)
            except queue.Empty:
                continue
            if kind == "progress":
                if progress is not None:
                    progress(value)
            elif kind == "done":
                return self._convert(value) if self._convert is not None else value
            else:
                raise value


class Backend(ABC):
    """An engine that turns a BackendJob into images: the laptop's diffusers, a ComfyUI server, a cloud service."""

    kind: ClassVar[str] = ""
    """"local", "comfyui", "bedrock" or "sagemaker"."""

    @property
    @abstractmethod
    def label(self) -> str:
        """The backend in the user's words, without secrets: "ComfyUI at gpu-box:8188"."""

    @abstractmethod
    def capabilities(self, refresh: bool = False) -> Capabilities:
        """What it offers now (asks the server or service the first time, or when `refresh`)."""

    @abstractmethod
    def prepare(self, model: str | None, *, device: str = "auto", precision: str = "auto",
                progress: ProgressCallback | None = None):
        """The model a job will run on: loaded here (local) or checked against what the backend offers.

        The result has `name`, `hash`, `native_resolution` and `fixed_sizes`, as generate() plans with them.
        """

    @abstractmethod
    def submit(self, model, job: BackendJob) -> Job:
        """Start a job on the prepared model; sizes and limits are checked before anything is sent."""

    def run(self, model, job: BackendJob, progress: ProgressCallback | None = None,
            cancel: CancelCallback | None = None) -> list[np.ndarray]:
        """Submit and wait: one (height, width, 3) uint8 image per seed, each exactly the job's size.

        LoRAs are refused by a backend that cannot apply them, rather than left out of the picture and kept in
        its record.
        """
        if job.loras and "loras" not in self.capabilities().controls:
            raise BackendError(f"LoRAs are applied on this computer only; {self.label} cannot load them. Remove "
                               "the LoRAs or choose This computer.")
        images = self.submit(model, job).wait(progress, cancel)
        return [fit_result(image, job.size, self.label) for image in images]

    def default_model(self) -> str:
        """The model a request that names none runs on (a server's first checkpoint, the configured Bedrock model)."""
        models = self.capabilities().models
        if not models:
            raise BackendError(f"{self.label} offers no model.")
        return models[0]

    def record(self, model) -> dict:
        """Parameters to add to each result's record (how it ran); never a secret."""
        return {}

    def estimate(self, job: BackendJob) -> Cost | None:
        """What the job would cost before it is sent, or None when it costs nothing per image."""
        return None

    def close(self) -> None:
        """Release connections and threads; the backend may not be used afterwards."""


def for_backend(request, backend: Backend):
    """The request as a backend runs it: diffusion, on the model named or else the backend's default model."""
    import dataclasses

    if backend.kind == "local":
        return request
    return dataclasses.replace(request, engine="diffusion", model=request.model or backend.default_model())


def fit_result(image: np.ndarray, size: Extent, label: str) -> np.ndarray:
    """A result as (size.height, size.width, 3) uint8: alpha dropped, a server's other size scaled to it."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise BackendError(f"{label} returned something that is not an RGB image.")
    pixels = pixels[..., :3]
    if pixels.shape[:2] != (size.height, size.width):
        import cv2

        shrinking = size.width * size.height < pixels.shape[0] * pixels.shape[1]
        pixels = cv2.resize(np.ascontiguousarray(pixels), (size.width, size.height),
                            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(pixels)
