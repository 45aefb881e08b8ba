"""A SageMaker endpoint serving a JumpStart Stable Diffusion model as a Backend (text to image and inpainting).

The JumpStart payload, as its example notebooks send it: {"prompt", "negative_prompt", "width", "height",
"num_inference_steps", "guidance_scale", "seed", "num_images_per_prompt"} for text to image; inpainting
models take "image" and "mask_image" as base64 JPEG (ContentType "application/json;jpeg", the mask white
where to repaint) instead of the size. With Accept "application/json;jpeg" the answer is
{"generated_images": [base64 JPEG, ...], "prompt": ...}; with plain JSON the images come as nested lists
of pixel values, which are read too. An endpoint is billed by the hour it runs, not by image.
"""

from __future__ import annotations

import json

import numpy as np

from sd_studio.engine.backends import aws
from sd_studio.engine.backends.base import (
    Backend,
    BackendError,
    BackendJob,
    Capabilities,
    EventJob,
    RemoteModel,
    clean_text,
)
from sd_studio.engine.backends.images import decode_image, encode_image, from_base64, to_base64
from sd_studio.engine.backends.settings import SageMakerSettings

SERVICE = "Amazon SageMaker"
JPEG_JSON = "application/json;jpeg"
MAX_SIDE = 2048
"""JumpStart's Stable Diffusion containers take sides up to this (and multiples of 8)."""
MAX_PROMPT = 10000


class SageMakerBackend(Backend):
    """One SageMaker endpoint, called with the standard AWS credential chain."""

    kind = "sagemaker"

    def __init__(self, settings: SageMakerSettings, client=None, retry: aws.Retry = aws.DEFAULT_RETRY,
                 **client_options) -> None:
        name = settings.endpoint.strip()
        if not name or len(name) > 63 or not all(c.isalnum() or c == "-" for c in name):
            raise BackendError(f"{clean_text(settings.endpoint, 80)!r} is not a SageMaker endpoint name "
                               "(letters, digits and hyphens, at most 63).")
        self.settings = settings
        self.endpoint = name
        self._client = aws.LazyClient("sagemaker-runtime", settings.region, settings.profile, client,
                                      **client_options)
        self._retry = retry

    @property
    def client(self):
        """The sagemaker-runtime client (made on first use)."""
        return self._client.get()

    @property
    def label(self) -> str:
        """"SageMaker endpoint my-sd-endpoint"."""
        return f"SageMaker endpoint {self.endpoint}"

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """What a JumpStart Stable Diffusion endpoint takes (an endpoint cannot be asked which model it serves)."""
        from sd_studio.document.geometry import Extent

        return Capabilities(modes=("txt2img", "inpaint"), models=(self.endpoint,), max_size=Extent(MAX_SIDE, MAX_SIDE),
                            controls=("negative prompt", "steps", "guidance", "seed"),
                            device=f"{SERVICE}, {aws.region_of(self.client)}")

    def prepare(self, model, *, device="auto", precision="auto", progress=None) -> RemoteModel:
        """The endpoint as the model (JumpStart's SD 2 models plan at 512 unless the resolution is set)."""
        self.client  # a missing region or profile is reported now  # noqa: B018
        return RemoteModel(name=self.endpoint, native_resolution=512, device=self.label)

    def record(self, model) -> dict:
        """"Backend: Amazon SageMaker (us-east-1)"."""
        return {"Backend": f"{SERVICE} ({aws.region_of(self.client)})"}

    def check(self, job: BackendJob) -> None:
        """What the endpoint would refuse, refused before upload."""
        if job.mode not in ("txt2img", "inpaint"):
            raise BackendError(f"A JumpStart Stable Diffusion endpoint does text to image and inpainting, not "
                               f"{job.mode}.")
        if max(job.width, job.height) > MAX_SIDE or job.width % 8 or job.height % 8:
            raise BackendError(f"{self.label} takes sides of at most {MAX_SIDE} pixels, multiples of 8; this region "
                               f"is {job.width} x {job.height}. Lower the resolution.")
        if not job.prompt.strip():
            raise BackendError(f"{self.label} needs a prompt.")
        for what, text in (("prompt", job.prompt), ("negative prompt", job.negative_prompt)):
            if len(text) > MAX_PROMPT:
                raise BackendError(f"The {what} is {len(text)} characters; {self.label} takes at most {MAX_PROMPT}.")

    def submit(self, model, job: BackendJob) -> EventJob:
        """Check, then invoke the endpoint once per seed on a worker thread."""
        self.check(job)
        client = self.client
        images = {}
        if job.mode == "inpaint":
            images = {"image": to_base64(encode_image(job.image, "JPEG", 95)),
                      "mask_image": to_base64(encode_image(job.mask, "JPEG", 100))}

        def one(seed: int, events: EventJob) -> np.ndarray:
            payload = {"prompt": job.prompt, "num_inference_steps": job.steps, "guidance_scale": job.guidance,
                       "seed": int(seed), "num_images_per_prompt": 1, **images}
            if job.negative_prompt:
                payload["negative_prompt"] = job.negative_prompt
            if job.mode == "txt2img":
                payload.update(width=job.width, height=job.height)

            def invoke() -> bytes:
                answer = client.invoke_endpoint(EndpointName=self.endpoint, Body=json.dumps(payload).encode(),
                                                ContentType=JPEG_JSON if job.mode == "inpaint" else "application/json",
                                                Accept=JPEG_JSON)
                return answer["Body"].read()

            raw = aws.call(invoke, service=SERVICE, subject=self.label, retry=self._retry,
                           cancelled=lambda: events.cancel_requested)
            return parse_generated(raw, self.label)[0]

        return aws.per_seed_job(job.seeds, one, self.label, " (the endpoint bills by the hour it runs)")


def parse_generated(raw: bytes, label: str) -> list[np.ndarray]:
    """The images of a JumpStart answer: base64 JPEGs, or nested lists of pixel values."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise BackendError(f"{label} answered with something that is not JSON.") from None
    generated = body.get("generated_images") if isinstance(body, dict) else None
    if not isinstance(generated, list) or not generated:
        raise BackendError(f"{label} sent no generated_images; is it a JumpStart Stable Diffusion endpoint?")
    images = []
    for item in generated:
        if isinstance(item, str):
            images.append(decode_image(from_base64(item, label), 8192))
            continue
        pixels = np.asarray(item)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or max(pixels.shape[:2]) > 8192:
            raise BackendError(f"{label} sent an image that is not an RGB array.")
        images.append(np.clip(pixels, 0, 255).astype(np.uint8))
    return images
