"""The optional OpenVINO backend: a loaded model's UNet, VAE decoder and text encoder run by OpenVINO, not torch.

`pip install "sd-studio[openvino]"` enables it. Each part is converted from torch once
(`openvino.convert_model` with example inputs; the IR keeps batch and spatial sizes dynamic) and saved
in the user's cache folder keyed by the model's hash; each input shape is then compiled from that IR
with the precision hint (bf16 or f32) and the compiled model exported beside it, keyed by the shapes
and the hint, so a second load imports files instead of converting and compiling. The parts stay torch modules to diffusers (their `forward` is replaced),
so `.config`, `.dtype`, `.device` and LoRA loading keep working; a call the IR cannot serve (extra
conditioning, a LoRA) or a failed conversion runs the torch forward instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Callable

from sd_studio.engine.request import Progress

ProgressFn = Callable[[Progress], None] | None

IR_FORMAT = "2"
"""Bumped when what is converted changes, so stale IR in users' caches is not reused."""


def available() -> bool:
    """True when the openvino package is installed."""
    return importlib.util.find_spec("openvino") is not None


def cache_root() -> Path:
    """Where converted models live: <user cache>/sd-studio/openvino (SD_STUDIO_OPENVINO_CACHE overrides)."""
    override = os.environ.get("SD_STUDIO_OPENVINO_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_path

    return user_cache_path("sd-studio", appauthor=False) / "openvino"


class ConversionError(RuntimeError):
    """A torch module could not be converted to OpenVINO (the caller falls back to torch)."""


class OpenVinoPart:
    """One torch module as OpenVINO: converted once to IR on disk (cache key: model hash + part), compiled per shape."""

    def __init__(self, name: str, core_module, key: str, hint: str, *, root: Path | None = None,
                 convert: Callable | None = None, threads: int | None = None) -> None:
        self.name = name
        self.core_module = core_module  # a torch module taking and returning plain tensors
        self.key = key
        self.hint = hint  # OpenVINO INFERENCE_PRECISION_HINT: "bf16" or "f32"
        self.root = Path(root) if root is not None else cache_root()
        self._convert = convert
        self.threads = threads
        self.conversions = 0
        self._ir = None
        self._compiled: dict[tuple, object] = {}
        self._lock = threading.Lock()

    @property
    def ir_path(self) -> Path:
        """The IR file (.xml beside its .bin) of this part."""
        return self.root / self.key / f"{self.name}.xml"

    def blob_path(self, shapes: tuple) -> Path:
        """The compiled model for these input shapes and this precision hint, exported beside the IR."""
        import openvino

        shape_text = "_".join("x".join(str(d) for d in shape) for shape in shapes)
        version = openvino.__version__.split("-")[0]  # blobs do not move between OpenVINO releases
        return self.root / self.key / f"{self.name}-{shape_text}-ov{version}-{self.hint}.blob"

    def ir(self, example_inputs: tuple, progress: ProgressFn = None):
        """The part's IR (an openvino.Model): read from the cache, or converted now and saved; ConversionError if not."""
        if self._ir is not None:
            return self._ir
        import openvino as ov
        import torch

        if self.ir_path.is_file() and self.ir_path.with_suffix(".bin").is_file():
            self._ir = ov.Core().read_model(str(self.ir_path))
            return self._ir
        if progress is not None:
            progress(Progress("converting", 0, 1, message=f"Converting the {self.name} to OpenVINO (once per model)"))
        convert = self._convert or ov.convert_model
        try:
            with torch.no_grad():
                model = convert(self.core_module, example_input=example_inputs)
            self.conversions += 1
            tmp = self.ir_path.parent.with_name(self.ir_path.parent.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            ov.save_model(model, str(tmp / self.ir_path.name), compress_to_fp16=False)
            self.ir_path.parent.mkdir(parents=True, exist_ok=True)
            for file in tmp.iterdir():
                os.replace(file, self.ir_path.parent / file.name)
            shutil.rmtree(tmp, ignore_errors=True)
        except Exception as exc:
            raise ConversionError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
        if progress is not None:
            progress(Progress("converting", 1, 1, message=f"Converted the {self.name} to OpenVINO"))
        self._ir = model
        return model

    def compiled(self, inputs: tuple, progress: ProgressFn = None):
        """The compiled model for these inputs' shapes (compiled on first use of a shape)."""
        shapes = tuple(tuple(t.shape) for t in inputs)
        with self._lock:
            if shapes in self._compiled:
                return self._compiled[shapes]
            import openvino as ov

            config = {"INFERENCE_PRECISION_HINT": self.hint, "PERFORMANCE_HINT": "LATENCY"}
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = int(self.threads)
            core = ov.Core()
            blob = self.blob_path(shapes)
            # Our own compiled-model cache: OpenVINO's CACHE_DIR mixed up in-memory models of one IR here.
            compiled = None
            if blob.is_file():
                try:
                    compiled = core.import_model(io.BytesIO(blob.read_bytes()), "CPU", config)
                except Exception:  # a blob from another OpenVINO version; compile afresh below
                    compiled = None
            if compiled is None:
                model = self.ir(inputs, progress).clone()
                model.reshape({i: list(shape) for i, shape in enumerate(shapes)})
                if progress is not None:
                    progress(Progress("compiling", 0, 1, message=f"Compiling the {self.name} for {shapes[0]}"))
                compiled = core.compile_model(model, "CPU", config)
                try:
                    blob.parent.mkdir(parents=True, exist_ok=True)
                    tmp = blob.with_suffix(f".tmp{os.getpid()}")
                    data = compiled.export_model()
                    tmp.write_bytes(data.getvalue() if hasattr(data, "getvalue") else data)
                    os.replace(tmp, blob)
                except Exception:
                    pass  # the blob only saves compile time next time
                self._ir = None  # the weights live in the compiled model now; another shape re-reads the IR (mmap)
            self._compiled[shapes] = compiled
            return compiled

    def __call__(self, *inputs, progress: ProgressFn = None):
        """Run the part on torch tensors; returns a float32 torch tensor (the first output)."""
        import numpy as np
        import torch

        arrays = [np.ascontiguousarray((t.detach().float() if t.is_floating_point() else t.detach()).cpu().numpy())
                  for t in inputs]
        request = self.compiled(tuple(inputs), progress)
        out = request(arrays)[0]
        return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))


def _unet_core(unet):
    import torch

    forward = type(unet).forward  # the class's, not a replaced instance forward

    class UNetCore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample, time_embedding, encoder_hidden_states):
            # The sinusoidal timestep embedding is computed by torch in fp32 and passed in: under a bf16
            # precision hint OpenVINO would round the timestep itself (601 -> 600) and scramble its phases.
            self.unet.get_time_embed = lambda sample, timestep: time_embedding.to(sample.dtype)
            try:
                return forward(self.unet, sample, time_embedding, encoder_hidden_states, return_dict=False)[0]
            finally:
                del self.unet.__dict__["get_time_embed"]

    return UNetCore().eval()


def _decoder_core(decoder):
    return _vae_half_core(decoder)


def _vae_half_core(half):
    """The VAE's encoder or decoder as a module of one tensor input, for conversion (its own forward
    is replaced by the backend's, so the class's is called)."""
    import torch

    forward = type(half).forward

    class VaeHalfCore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.part = half

        def forward(self, x):
            return forward(self.part, x)

    return VaeHalfCore().eval()


def _text_core(encoder):
    import torch

    forward = type(encoder).forward

    class TextCore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids):
            out = forward(self.encoder, input_ids=input_ids, return_dict=True)
            return out.last_hidden_state, out.pooler_output

    return TextCore().eval()


class OpenVinoModel:
    """A loaded model's UNet, VAE decoder and text encoder served by OpenVINO, installed as their forward; falls back to torch."""

    def __init__(self, model, precision: str, *, root: Path | None = None, convert: Callable | None = None,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        from sd_studio.engine.cpu.processor import inference_threads

        key_source = model.hash or hashlib.sha256(str(model.spec).encode()).hexdigest()[:10]
        self.key = f"{key_source}-ov{IR_FORMAT}"
        self.model = model
        self.precision = precision
        self.on_fallback = on_fallback
        self.progress: ProgressFn = None
        self.torch_only = False  # set per run (LoRAs change the weights the IR was made from)
        self.failed: str | None = None
        self.unet = model.components["unet"]
        self.vae = model.components.get("vae")
        hint = "bf16" if precision == "bf16" else "f32"
        threads = inference_threads()
        self.unet_part = OpenVinoPart("unet", _unet_core(self.unet), self.key, hint, root=root, convert=convert,
                                      threads=threads)
        # The VAE decodes in f32 always: bf16 bands smooth gradients.
        self.decoder_part = self.encoder_part = None
        self.encoder_failed: str | None = None
        if self.vae is not None:
            self.decoder_part = OpenVinoPart("vae_decoder", _decoder_core(self.vae.decoder), self.key, "f32",
                                             root=root, convert=convert, threads=threads)
            # The encoder (img2img and inpaint) likewise in f32; converted on its first use, and a failure
            # leaves only it on torch.
            self.encoder_part = OpenVinoPart("vae_encoder", _vae_half_core(self.vae.encoder), self.key, "f32",
                                             root=root, convert=convert, threads=threads)
        # The text encoder runs once per image: f32, and a failure to convert it costs only its own speed-up.
        self.text_encoder = model.components.get("text_encoder")
        self.text_part = None
        self.text_failed: str | None = None
        if self.text_encoder is not None:
            self.text_part = OpenVinoPart("text_encoder", _text_core(self.text_encoder), self.key, "f32",
                                          root=root, convert=convert, threads=threads)
            self.text_encoder.forward = self._text_forward
        self.unet.forward = self._unet_forward
        if self.vae is not None:
            self.vae.decoder.forward = self._decoder_forward
            self.vae.encoder.forward = self._encoder_forward

    @property
    def conversions(self) -> int:
        """How many parts were converted from torch by this object (0 when every IR came from the cache)."""
        parts = (self.unet_part, self.decoder_part, self.encoder_part, self.text_part)
        return sum(part.conversions for part in parts if part is not None)

    def uninstall(self) -> None:
        """Give the parts their torch forward back."""
        self.unet.__dict__.pop("forward", None)
        if self.vae is not None:
            self.vae.decoder.__dict__.pop("forward", None)
            self.vae.encoder.__dict__.pop("forward", None)
        if self.text_encoder is not None:
            self.text_encoder.__dict__.pop("forward", None)

    def _fail(self, exc: Exception) -> None:
        self.failed = str(exc)
        self.uninstall()
        message = f"OpenVINO could not convert this model ({exc}); running it with torch instead."
        if self.progress is not None:
            self.progress(Progress("converting", 1, 1, message=message))
        if self.on_fallback is not None:
            self.on_fallback(message)

    def prepare(self, width: int, height: int, guidance: float, loras=(), progress: ProgressFn = None) -> None:
        """Before a run: convert/compile for its shape now (with messages) unless it runs on torch (LoRAs)."""
        import torch

        self.progress = progress
        self.torch_only = bool(loras)
        if self.failed or self.torch_only:
            return
        config = self.unet.config
        batch = 2 if guidance > 1 and getattr(config, "time_cond_proj_dim", None) is None else 1
        h, w = height // 8, width // 8
        try:
            sample = torch.zeros(batch, config.in_channels, h, w)
            self.unet_part.compiled(
                (sample, self._time_embedding(sample, torch.tensor(1.0)),
                 torch.zeros(batch, 77, config.cross_attention_dim)), progress)
            if self.decoder_part is not None:
                self.decoder_part.compiled((torch.zeros(1, self.vae.config.latent_channels, h, w),), progress)
        except ConversionError as exc:
            self._fail(exc)

    def _unet_forward(self, sample, timestep, encoder_hidden_states=None, *args, return_dict: bool = True, **kwargs):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        extras = [k for k, v in kwargs.items() if v is not None and k != "cross_attention_kwargs"] + list(args)
        if self.torch_only or self.failed or extras or kwargs.get("cross_attention_kwargs"):
            return self._torch_forward(sample, timestep, encoder_hidden_states, *args, return_dict=return_dict,
                                       **kwargs)
        try:
            out = self.unet_part(sample, self._time_embedding(sample, timestep), encoder_hidden_states,
                                 progress=self.progress)
        except ConversionError as exc:
            self._fail(exc)
            return type(self.unet).forward(self.unet, sample, timestep, encoder_hidden_states, *args,
                                           return_dict=return_dict, **kwargs)
        out = out.to(sample.dtype)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    def _torch_forward(self, sample, timestep, encoder_hidden_states, *args, return_dict: bool = True, **kwargs):
        """The UNet on torch (a run with LoRAs, or extra inputs the IR lacks), in the precision chosen for
        OpenVINO: bf16 through autocast, so the fp32 weights that later conversions read stay untouched."""
        import torch

        forward = type(self.unet).forward
        if self.precision != "bf16" or sample.device.type != "cpu":
            return forward(self.unet, sample, timestep, encoder_hidden_states, *args, return_dict=return_dict, **kwargs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(self.unet, sample, timestep, encoder_hidden_states, *args, return_dict=return_dict, **kwargs)
        if return_dict:
            out.sample = out.sample.to(sample.dtype)
            return out
        return (out[0].to(sample.dtype),) + tuple(out[1:])

    def _time_embedding(self, sample, timestep):
        """The UNet's sinusoidal timestep embedding for this batch, in fp32 (torch, outside the IR)."""
        import torch

        with torch.no_grad():
            return type(self.unet).get_time_embed(self.unet, sample=sample.float(), timestep=timestep).float()

    def _text_forward(self, input_ids=None, *args, **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        extras = [k for k, v in kwargs.items() if v is not None and v is not False and k != "return_dict"] + list(args)
        if self.torch_only or self.failed or self.text_failed or extras or input_ids is None:
            return type(self.text_encoder).forward(self.text_encoder, input_ids, *args, **kwargs)
        try:
            hidden, pooled = self._run_text(input_ids)
        except ConversionError as exc:
            self.text_failed = str(exc)
            self.text_encoder.__dict__.pop("forward", None)
            if self.progress is not None:
                self.progress(Progress("converting", 1, 1, message=f"The text encoder stays on torch ({exc})."))
            return type(self.text_encoder).forward(self.text_encoder, input_ids, *args, **kwargs)
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)
        return out if kwargs.get("return_dict", True) is not False else (hidden, pooled)

    def _run_text(self, input_ids):
        """(last hidden state, pooled output) of the text encoder for int64 token ids, by OpenVINO."""
        import numpy as np
        import torch

        ids = input_ids.to(torch.int64)
        request = self.text_part.compiled((ids,), self.progress)
        result = request([np.ascontiguousarray(ids.cpu().numpy())])
        hidden, pooled = (torch.from_numpy(np.array(result[i], dtype=np.float32, copy=True)) for i in (0, 1))
        return hidden, pooled

    def _encoder_forward(self, x):
        if self.failed or self.encoder_failed:  # LoRAs change no VAE weight: torch_only does not matter here
            return type(self.vae.encoder).forward(self.vae.encoder, x)
        try:
            return self.encoder_part(x, progress=self.progress).to(x.dtype)
        except ConversionError as exc:
            self.encoder_failed = str(exc)
            self.vae.encoder.__dict__.pop("forward", None)
            if self.progress is not None:
                self.progress(Progress("converting", 1, 1, message=f"The VAE encoder stays on torch ({exc})."))
            return type(self.vae.encoder).forward(self.vae.encoder, x)

    def _decoder_forward(self, z, latent_embeds=None):
        if self.failed or latent_embeds is not None:  # LoRAs change no VAE weight: torch_only does not matter here
            return type(self.vae.decoder).forward(self.vae.decoder, z, latent_embeds)
        try:
            return self.decoder_part(z, progress=self.progress).to(z.dtype)
        except ConversionError as exc:
            self._fail(exc)
            return type(self.vae.decoder).forward(self.vae.decoder, z, latent_embeds)
