"""The laptop's own engine behind the Backend interface: diffusers models from the ModelCache, run_diffusion."""

from __future__ import annotations

from sd_studio.engine.backends.base import Backend, BackendJob, Capabilities, DeferredJob

LOCAL_CONTROLS = ("negative prompt", "steps", "guidance", "strength", "seed", "loras")
"""Every setting the local engine honours beyond the prompt."""


class LocalBackend(Backend):
    """Diffusion on this machine: models load once into a ModelCache and run on the calling (engine) thread."""

    kind = "local"

    def __init__(self, models=None) -> None:
        self._models = models

    @property
    def models(self):
        """The ModelCache jobs load from (the process-wide one unless one was given)."""
        if self._models is None:
            from sd_studio.engine.generate import default_models

            self._models = default_models()
        return self._models

    @property
    def label(self) -> str:
        """"this computer"."""
        return "this computer"

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """Every mode and sampler; the models are whatever the model boxes find (engine/models/discovery)."""
        from sd_studio.engine.schedulers import scheduler_names

        return Capabilities(modes=("inpaint", "img2img", "txt2img"), samplers=scheduler_names(),
                            controls=LOCAL_CONTROLS, device="this computer")

    def prepare(self, model, *, device="auto", precision="auto", progress=None):
        """The loaded model (from the cache when it is there)."""
        from sd_studio.errors import GenerationError

        if not model:
            raise GenerationError("Diffusion needs a model: pass a hub id, a diffusers folder or a .safetensors file.")
        return self.models.get(model, device=device, precision=precision, progress=progress)

    def submit(self, model, job: BackendJob) -> DeferredJob:
        """A job that runs run_diffusion when waited on, on the waiting thread (where torch's settings live)."""
        from sd_studio.engine.diffusion import run_diffusion

        def work(progress, cancel):
            return run_diffusion(
                model, job.mode, image=job.image, mask=job.mask, prompt=job.prompt,
                negative_prompt=job.negative_prompt, steps=job.steps, guidance=job.guidance, strength=job.strength,
                seeds=list(job.seeds), scheduler=job.scheduler, width=job.width, height=job.height,
                memory_mode=job.memory_mode, loras=job.loras, progress=progress, cancel=cancel,
            )

        return DeferredJob(work)

    def record(self, model) -> dict:
        """The precision the UNet ran in, and the CPU backend when it was not torch."""
        from sd_studio.engine.diffusion import backend_used, precision_used

        setup = {"Precision": precision_used(model)}
        if model.device == "cpu" and backend_used(model) != "torch":
            setup["CPU backend"] = backend_used(model)
        return setup
