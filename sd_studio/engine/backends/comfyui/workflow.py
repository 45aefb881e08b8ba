"""The API-format graph ComfyUI runs for one job and one seed, built from what the server offers (/object_info).

The graph uses ComfyUI's own core nodes only: CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage or
LoadImage + VAEEncode, LoadImageMask with InpaintModelConditioning (or VAEEncodeForInpaint /
SetLatentNoiseMask on servers without it), KSampler, VAEDecode and SaveImage. Node ids are fixed so the
result is always read from the same SaveImage node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from sd_studio.engine.backends.base import BackendError, BackendJob, clean_text

SAMPLERS: dict[str, tuple[str, str]] = {
    "Euler a": ("euler_ancestral", "normal"),
    "Euler": ("euler", "normal"),
    "DPM++ 2M": ("dpmpp_2m", "normal"),
    "DPM++ 2M Karras": ("dpmpp_2m", "karras"),
    "DPM++ SDE Karras": ("dpmpp_sde", "karras"),
    "DDIM": ("ddim", "ddim_uniform"),
    "UniPC": ("uni_pc", "normal"),
    "LCM": ("lcm", "sgm_uniform"),
}
"""Our sampler names (A1111's) as ComfyUI's KSampler (sampler_name, scheduler), as A1111 users know the pairs."""

OUTPUT_NODE = "11"
"""The SaveImage node whose images are the result."""

CORE_NODES = ("CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEDecode", "SaveImage")
"""Nodes every job needs."""

MODE_NODES = {
    "txt2img": ("EmptyLatentImage",),
    "img2img": ("LoadImage", "VAEEncode"),
    "inpaint": ("LoadImage", "LoadImageMask"),
}
"""Nodes each mode needs besides the core ones (inpainting also needs one of INPAINT_NODES)."""

INPAINT_NODES = ("InpaintModelConditioning", "VAEEncodeForInpaint")
"""Ways to inpaint, the best first: InpaintModelConditioning serves inpainting and ordinary models alike."""

FILENAME_PREFIX = "sd-studio/region"
"""Where SaveImage writes results in the server's output folder."""


@dataclass(frozen=True)
class ServerInfo:
    """What a server offers, read from its /object_info: nodes, checkpoints, samplers and schedulers."""

    nodes: frozenset[str]
    checkpoints: tuple[str, ...]
    samplers: tuple[str, ...]
    schedulers: tuple[str, ...]
    inpaint_noise_mask: bool
    """True when its InpaintModelConditioning has the noise_mask input (newer servers)."""

    @classmethod
    def parse(cls, info: object, label: str) -> ServerInfo:
        """ServerInfo from a GET /object_info answer; BackendError if it is not one."""
        if not isinstance(info, dict) or "KSampler" not in info and "CheckpointLoaderSimple" not in info:
            raise BackendError(f"The server at {label} does not answer like ComfyUI (no KSampler in /object_info).")
        return cls(
            nodes=frozenset(name for name in info if isinstance(name, str)),
            checkpoints=_options(info, "CheckpointLoaderSimple", "ckpt_name"),
            samplers=_options(info, "KSampler", "sampler_name"),
            schedulers=_options(info, "KSampler", "scheduler"),
            inpaint_noise_mask="noise_mask" in _inputs(info, "InpaintModelConditioning"),
        )

    def our_samplers(self) -> tuple[str, ...]:
        """Our sampler names whose ComfyUI pair this server has."""
        return tuple(name for name, (sampler, scheduler) in SAMPLERS.items()
                     if sampler in self.samplers and scheduler in self.schedulers)

    def modes(self) -> tuple[str, ...]:
        """The modes its nodes can run."""
        if not set(CORE_NODES) <= self.nodes:
            return ()
        found = [mode for mode, needed in MODE_NODES.items() if set(needed) <= self.nodes]
        if "inpaint" in found and not self.nodes & set(INPAINT_NODES):
            found.remove("inpaint")
        return tuple(found)

    def checkpoint(self, wanted: str | None, label: str) -> str:
        """The checkpoint file to load: the one named (by file, or by name without folder and extension), else the first."""
        if not self.checkpoints:
            raise BackendError(f"The ComfyUI server at {label} has no checkpoint in its models/checkpoints folder.")
        if not wanted:
            return self.checkpoints[0]
        if wanted in self.checkpoints:
            return wanted
        wanted_names = {wanted.casefold(), PurePosixPath(wanted.replace("\\", "/")).name.casefold()}
        for name in self.checkpoints:
            path = PurePosixPath(name.replace("\\", "/"))
            if {path.name.casefold(), path.stem.casefold()} & wanted_names:
                return name
        shown = ", ".join(clean_text(c, 60) for c in self.checkpoints[:5])
        more = f" and {len(self.checkpoints) - 5} more" if len(self.checkpoints) > 5 else ""
        raise BackendError(f"The ComfyUI server at {label} has no checkpoint {clean_text(wanted, 80)!r}; "
                           f"it has {shown}{more}.")


def native_resolution(checkpoint: str) -> int:
    """The resolution to plan regions at for a checkpoint, guessed from its name as ComfyUI users name them."""
    name = checkpoint.casefold()
    if any(key in name for key in ("xl", "sd3", "flux", "pony", "illustrious", "1024")):
        return 1024
    if any(key in name for key in ("v2-", "sd2", "768")):
        return 768
    return 512


def build_graph(job: BackendJob, seed: int, info: ServerInfo, checkpoint: str, label: str,
                image: str | None = None, mask: str | None = None) -> dict:
    """The API-format prompt for one seed of `job`; `image` and `mask` are the names /upload/image gave.

    BackendError when the server lacks a node the mode needs or a sampler pair.
    """
    needed = set(CORE_NODES) | set(MODE_NODES[job.mode])
    missing = sorted(needed - info.nodes)
    if job.mode == "inpaint" and not info.nodes & set(INPAINT_NODES):
        missing.append(" or ".join(INPAINT_NODES))
    if missing:
        raise BackendError(f"The ComfyUI server at {label} lacks the node {', '.join(missing)}; "
                           "update ComfyUI there and try again.")
    if job.scheduler not in SAMPLERS:
        raise BackendError(f"ComfyUI has no equivalent of the sampler {job.scheduler!r}; "
                           f"choose one of: {', '.join(SAMPLERS)}.")
    sampler, scheduler = SAMPLERS[job.scheduler]
    if sampler not in info.samplers or scheduler not in info.schedulers:
        offered = ", ".join(info.our_samplers()) or "none of ours"
        raise BackendError(f"The ComfyUI server at {label} has no {sampler}/{scheduler} sampler for "
                           f"{job.scheduler!r}; it offers {offered}.")
    graph: dict[str, dict] = {
        "1": _node("CheckpointLoaderSimple", ckpt_name=checkpoint),
        "2": _node("CLIPTextEncode", text=job.prompt, clip=["1", 1]),
        "3": _node("CLIPTextEncode", text=job.negative_prompt, clip=["1", 1]),
    }
    positive, negative, denoise = ["2", 0], ["3", 0], float(job.strength)
    if job.mode == "txt2img":
        graph["4"] = _node("EmptyLatentImage", width=job.width, height=job.height, batch_size=1)
        latent, denoise = ["4", 0], 1.0
    else:
        if image is None or (job.mode == "inpaint" and mask is None):
            raise BackendError("The region's image was not uploaded.")
        graph["5"] = _node("LoadImage", image=image)
        if job.mode == "img2img":
            graph["6"] = _node("VAEEncode", pixels=["5", 0], vae=["1", 2])
            latent = ["6", 0]
        else:
            # LoadImageMask reads the red channel as the mask: our mask's white (255) repaints
            graph["7"] = _node("LoadImageMask", image=mask, channel="red")
            if "InpaintModelConditioning" in info.nodes:
                inputs = {"positive": positive, "negative": negative, "vae": ["1", 2], "pixels": ["5", 0],
                          "mask": ["7", 0]}
                if info.inpaint_noise_mask:
                    inputs["noise_mask"] = True
                graph["8"] = _node("InpaintModelConditioning", **inputs)
                positive, negative, latent = ["8", 0], ["8", 1], ["8", 2]
            elif denoise >= 1.0:
                # greys the masked pixels out before encoding, so it only suits a full repaint
                graph["8"] = _node("VAEEncodeForInpaint", pixels=["5", 0], vae=["1", 2], mask=["7", 0], grow_mask_by=6)
                latent = ["8", 0]
            else:
                if not {"VAEEncode", "SetLatentNoiseMask"} <= info.nodes:
                    raise BackendError(f"The ComfyUI server at {label} cannot inpaint below full strength "
                                       "(no InpaintModelConditioning or SetLatentNoiseMask node).")
                graph["6"] = _node("VAEEncode", pixels=["5", 0], vae=["1", 2])
                graph["8"] = _node("SetLatentNoiseMask", samples=["6", 0], mask=["7", 0])
                latent = ["8", 0]
    graph["9"] = _node("KSampler", seed=int(seed), steps=int(job.steps), cfg=float(job.guidance),
                       sampler_name=sampler, scheduler=scheduler, denoise=denoise, model=["1", 0],
                       positive=positive, negative=negative, latent_image=latent)
    graph["10"] = _node("VAEDecode", samples=["9", 0], vae=["1", 2])
    graph[OUTPUT_NODE] = _node("SaveImage", images=["10", 0], filename_prefix=FILENAME_PREFIX)
    return graph


def _node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def _inputs(info: dict, node: str) -> dict:
    entry = info.get(node)
    if not isinstance(entry, dict) or not isinstance(entry.get("input"), dict):
        return {}
    found: dict = {}
    for group in ("required", "optional"):
        if isinstance(entry["input"].get(group), dict):
            found.update(entry["input"][group])
    return found


def _options(info: dict, node: str, name: str) -> tuple[str, ...]:
    """The choices of a combo input: ComfyUI lists them as [[choices...], {...}] or, newer, ["COMBO", {"options": [...]}]."""
    spec = _inputs(info, node).get(name)
    if not isinstance(spec, (list, tuple)) or not spec:
        return ()
    if isinstance(spec[0], list):
        return tuple(str(choice) for choice in spec[0])
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return tuple(str(choice) for choice in spec[1]["options"])
    return ()
