"""Amazon Bedrock's image models as a Backend: Stability AI's image services and SD 3.5, Amazon Nova Canvas.

Each variant is one InvokeModel call with its own seed, on a worker thread; the region is scaled into the
model's size limits before anything is sent (and the result back to the region's size by Backend.run),
and a region whose shape the model cannot take is refused before upload. Throttling and other transient
errors are retried with backoff (engine/backends/aws.py). The cost is reported before the first call.
"""

from __future__ import annotations

import json

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.engine.backends import aws
from sd_studio.engine.backends.base import Backend, BackendError, BackendJob, Capabilities, Cost, EventJob, RemoteModel
from sd_studio.engine.backends.bedrock.bodies import Inputs, parse_response, request_body
from sd_studio.engine.backends.bedrock.catalog import find_model
from sd_studio.engine.backends.settings import BedrockSettings
from sd_studio.engine.request import Progress

SERVICE = "Amazon Bedrock"

CONTROLS = {
    "stability-inpaint": ("negative prompt", "seed"),
    "stability-erase": ("seed",),
    "stability-search-replace": ("negative prompt", "seed"),
    "stability-sketch": ("negative prompt", "seed", "strength"),
    "sd35": ("negative prompt", "seed", "strength"),
    "stability-txt2img": ("negative prompt", "seed"),
    "nova-canvas": ("negative prompt", "seed", "guidance"),
}
"""The settings each kind of model honours beyond the prompt."""

NEEDS_PROMPT = frozenset({"stability-inpaint", "stability-search-replace", "stability-sketch", "sd35",
                          "stability-txt2img"})
"""Kinds of model that refuse a request without a prompt."""


class BedrockBackend(Backend):
    """One Bedrock model in one region, called with the standard AWS credential chain."""

    kind = "bedrock"

    def __init__(self, settings: BedrockSettings, client=None, retry: aws.Retry = aws.DEFAULT_RETRY,
                 **client_options) -> None:
        self.settings = settings
        self.model = find_model(settings.model_id)
        self._client = aws.LazyClient("bedrock-runtime", settings.region, settings.profile, client, **client_options)
        self._retry = retry

    @property
    def client(self):
        """The bedrock-runtime client (made on first use from the standard chain, region and profile)."""
        return self._client.get()

    @property
    def region(self) -> str:
        """The region calls go to."""
        return aws.region_of(self.client)

    @property
    def invoke_id(self) -> str:
        """The model id or inference profile id the calls name."""
        return self.model.invoke_id(self.settings.model_id.strip(), self.region)

    @property
    def label(self) -> str:
        """"Amazon Bedrock: Stable Image Inpaint"."""
        return f"{SERVICE}: {self.model.label}"

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """The model's modes and controls, from the catalog (Bedrock has no call that lists them)."""
        limits = self.model.limits
        side = int(limits.max_pixels ** 0.5)
        return Capabilities(modes=self.model.modes, models=(self.model.id,),
                            max_size=Extent(min(side, limits.max_side), min(side, limits.max_side)),
                            controls=CONTROLS.get(self.model.api, ()), device=f"{SERVICE}, {self.region}")

    def prepare(self, model, *, device="auto", precision="auto", progress=None) -> RemoteModel:
        """The Bedrock model (the request's model, when given, must be this one); the client is made here."""
        if model and find_model(model).id != self.model.id:
            raise BackendError(f"The Bedrock engine is set to {self.model.id}, not {model}.")
        self.client  # a missing region or profile is reported now, before any planning  # noqa: B018
        return RemoteModel(name=self.model.id, native_resolution=1024, device=self.label)

    def record(self, model) -> dict:
        """"Backend: Amazon Bedrock (us-west-2)" and, when called through one, the inference profile."""
        record = {"Backend": f"{SERVICE} ({self.region})"}
        if self.invoke_id != self.model.id:
            record["Bedrock model"] = self.invoke_id
        return record

    def estimate(self, job: BackendJob) -> Cost:
        """What the job's images cost, at the size they are sent at."""
        size = job.size
        try:
            size = self.model.limits.fit(job.size, self.label)
        except BackendError:
            pass  # submit() refuses that shape; the estimate still prices the job as asked
        return self.model.cost(len(job.seeds), size)

    def check(self, job: BackendJob) -> Extent:
        """Everything Bedrock would refuse, refused before upload; returns the size the images are sent at."""
        if job.mode not in self.model.modes:
            offered = ", ".join(self.model.modes) or "no editor mode (use `sd-studio bedrock`)"
            raise BackendError(f"{self.model.label} does not do {job.mode}; it does {offered}.")
        limits = self.model.limits
        limits.check_prompt(job.prompt, "prompt", self.model.label)
        limits.check_prompt(job.negative_prompt, "negative prompt", self.model.label)
        if self.model.api in NEEDS_PROMPT and not job.prompt.strip():
            hint = "; Stable Image Erase Object removes things without one" if job.mode == "inpaint" else ""
            raise BackendError(f"{self.model.label} needs a prompt{hint}.")
        if self.model.api == "stability-search-replace" and not self.settings.search_prompt.strip():
            raise BackendError("Search and Replace needs to know what to search for: set it in Settings > Engines "
                               "(or --search).")
        return limits.fit(job.size, self.model.label)

    def submit(self, model, job: BackendJob) -> EventJob:
        """Check, then call Bedrock once per seed on a worker thread."""
        size = self.check(job)
        image, mask = _scaled(job.image, job.mask, size)
        client, invoke_id, cost = self.client, self.invoke_id, self.estimate(job)

        def one(seed: int, events: EventJob) -> np.ndarray:
            inputs = Inputs(job.prompt, job.negative_prompt, self.model.limits.seed(seed), job.strength, job.guidance,
                            image, mask, size.width, size.height, self.settings.search_prompt)
            body = json.dumps(request_body(self.model.api, job.mode, inputs))
            return self._invoke(client, invoke_id, body, events)[0]

        return aws.per_seed_job(job.seeds, one, self.label, f", {cost.note}")

    def edit(self, image: np.ndarray, *, prompt: str = "", negative_prompt: str = "", seed: int = 0,
             extend: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
        """A whole-image service (remove background, outpaint, upscale) on `image`: the new (h, w, 4) RGBA image.

        `extend` is (left, right, up, down) pixels for outpainting. Runs here, on the calling thread.
        """
        api = self.model.api
        if api not in ("stability-remove-background", "stability-outpaint", "stability-upscale",
                       "stability-fast-upscale"):
            raise BackendError(f"{self.model.label} is not a whole-image service; use it from inpaint, img2img "
                               "or txt2img.")
        limits = self.model.limits
        height, width = image.shape[:2]
        if limits.fit(Extent(width, height), self.model.label) != Extent(width, height):
            raise BackendError(f"{self.model.label} takes images of {limits.min_pixels:,} to {limits.max_pixels:,} "
                               f"pixels, at least {limits.min_side} a side; this one is {width} x {height}.")
        limits.check_prompt(prompt, "prompt", self.model.label)
        if api == "stability-upscale" and not prompt.strip():
            raise BackendError(f"{self.model.label} needs a prompt describing the image.")
        body = request_body(api, "img2img", Inputs(prompt, negative_prompt, limits.seed(seed),
                                                  image=np.ascontiguousarray(image[..., :3])))
        if api == "stability-outpaint":
            left, right, up, down = (int(v) for v in extend)
            if min(extend) < 0 or max(extend) > 2000 or not any(extend):
                raise BackendError("Outpainting extends each side by 0 to 2000 pixels, and at least one side.")
            body.update(left=left, right=right, up=up, down=down)
            if prompt:
                body["prompt"] = prompt
        raw = self._invoke(self.client, self.invoke_id, json.dumps(body), None, mode="RGBA")
        return raw[0]

    def _invoke(self, client, invoke_id: str, body: str, events: EventJob | None, mode: str = "RGB"):
        def invoke() -> bytes:
            answer = client.invoke_model(modelId=invoke_id, body=body, contentType="application/json",
                                         accept="application/json")
            return answer["body"].read()

        def waiting(seconds: float, code: str) -> None:
            if events is not None:
                events.report(Progress("waiting", 0, 0, message=f"{SERVICE} said {code}; trying again in "
                                                                f"{seconds:.0f} s"))

        cancelled = (lambda: events.cancel_requested) if events is not None else (lambda: False)
        raw = aws.call(invoke, service=SERVICE, subject=self.model.label, retry=self._retry, cancelled=cancelled,
                       waiting=waiting)
        return parse_response(self.model.api, raw, self.label, mode)


def _scaled(image: np.ndarray | None, mask: np.ndarray | None, size: Extent):
    """The region's image and mask at the size they are sent at (the mask kept black and white)."""
    import cv2

    if image is None or (image.shape[1], image.shape[0]) == tuple(size):
        return image, mask
    shrinking = size.pixel_count < image.shape[0] * image.shape[1]
    scaled = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    if mask is not None:
        # any marked pixel marks its target pixel, as crop_for_model does: a thin scratch must not vanish
        mask = cv2.resize(mask, tuple(size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST)
        mask = np.where(mask > 0, np.uint8(255), np.uint8(0))
    return scaled, mask
