"""A small ComfyUI stand-in on 127.0.0.1: the routes, messages and failures of ComfyUI's server.py and execution.py.

It validates prompts as ComfyUI does (a missing node type, a value not in a list, an image that was never
uploaded: 400 with node_errors), queues them in order, runs one at a time with progress messages and
JPEG preview frames, writes /history and serves results from /view. Results differ from the input at
every pixel (the input inverted, XOR a seed-derived value; a prompt-derived pattern for text to image), so
a test can tell any pixel the client let through. Faults are switches: fail at a step, drop every socket
at a step, lose the next prompts, refuse the next prompt, hold the queue, demand a bearer token.

Run it alone (the benchmarks start several): `python tests/engine/fake_comfyui.py --port 0 --gpu-time 0.3`
prints `PORT <n>` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import struct
import sys
import threading
import time
import uuid

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

NODE_INPUTS = {
    "CheckpointLoaderSimple": {"ckpt_name": "CKPT"},
    "CLIPTextEncode": {"text": "STRING", "clip": "CLIP"},
    "EmptyLatentImage": {"width": "INT", "height": "INT", "batch_size": "INT"},
    "LoadImage": {"image": "UPLOAD"},
    "LoadImageMask": {"image": "UPLOAD", "channel": ["alpha", "red", "green", "blue"]},
    "VAEEncode": {"pixels": "IMAGE", "vae": "VAE"},
    "VAEEncodeForInpaint": {"pixels": "IMAGE", "vae": "VAE", "mask": "MASK", "grow_mask_by": "INT"},
    "SetLatentNoiseMask": {"samples": "LATENT", "mask": "MASK"},
    "InpaintModelConditioning": {"positive": "CONDITIONING", "negative": "CONDITIONING", "vae": "VAE",
                                 "pixels": "IMAGE", "mask": "MASK", "noise_mask": "BOOLEAN"},
    "KSampler": {"model": "MODEL", "seed": "INT", "steps": "INT", "cfg": "FLOAT", "sampler_name": "SAMPLER",
                 "scheduler": "SCHEDULER", "positive": "CONDITIONING", "negative": "CONDITIONING",
                 "latent_image": "LATENT", "denoise": "FLOAT"},
    "VAEDecode": {"samples": "LATENT", "vae": "VAE"},
    "SaveImage": {"images": "IMAGE", "filename_prefix": "STRING"},
}
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc", "lcm"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]
OUTPUT_NODES = {"SaveImage"}


class FakeComfyUI:
    """The server's state and its aiohttp application; run it with `serve()` (a thread) or `main()` (a process)."""

    def __init__(self, *, token: str | None = None, checkpoints=("sd15.safetensors", "sdxl_base_1.0.safetensors"),
                 missing_nodes=(), gpu_time: float = 0.0, device: str = "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
                 noise_mask_input: bool = True, fixed_result: bool = False) -> None:
        self.token = token
        self.checkpoints = list(checkpoints)
        self.missing_nodes = set(missing_nodes)
        self.gpu_time = gpu_time
        self.device = device
        self.noise_mask_input = noise_mask_input
        self.fixed_result = fixed_result
        self._fixed: dict[tuple[int, int], bytes] = {}
        # faults
        self.fail_at_step: int | None = None
        self.drop_sockets_at_step: int | None = None
        self.lose_next = 0
        self.refuse_next: dict | None = None
        self.hold = threading.Event()
        self.hold.set()
        # state, touched on the server's loop only
        self.uploads: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.history: dict[str, dict] = {}
        self.pending: list[tuple] = []
        self.running: tuple | None = None
        self.received: list[dict] = []
        self.finished: list[str] = []
        self.headers_seen: list[dict] = []
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.number = 0
        self._interrupt = False
        self._work: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- application -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application with ComfyUI's routes."""
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 2**20)
        app.add_routes([
            web.get("/ws", self.websocket),
            web.get("/system_stats", self.system_stats),
            web.get("/object_info", self.object_info),
            web.post("/upload/image", self.upload),
            web.post("/prompt", self.post_prompt),
            web.get("/queue", self.get_queue),
            web.post("/queue", self.post_queue),
            web.post("/interrupt", self.interrupt),
            web.get("/history/{prompt_id}", self.get_history),
            web.get("/view", self.view),
        ])
        return app

    @web.middleware
    async def _auth(self, request, handler):
        self.headers_seen.append(dict(request.headers))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    async def system_stats(self, request):
        """GET /system_stats as ComfyUI reports one CUDA device."""
        return web.json_response({
            "system": {"os": "posix", "ram_total": 64 * 2**30, "ram_free": 32 * 2**30, "comfyui_version": "0.3.60",
                       "python_version": "3.12.3", "pytorch_version": "2.8.0+cu128", "embedded_python": False,
                       "argv": ["main.py", "--listen"]},
            "devices": [{"name": self.device, "type": "cuda", "index": 0, "vram_total": 24 * 2**30,
                         "vram_free": 20 * 2**30, "torch_vram_total": 0, "torch_vram_free": 0}],
        })

    async def object_info(self, request):
        """GET /object_info: every node's inputs, the checkpoint, sampler and scheduler lists."""
        info = {}
        for name, inputs in NODE_INPUTS.items():
            if name in self.missing_nodes:
                continue
            required = {}
            for key, kind in inputs.items():
                if key == "noise_mask" and not self.noise_mask_input:
                    continue
                if kind == "CKPT":
                    required[key] = [list(self.checkpoints), {"tooltip": "The name of the checkpoint"}]
                elif kind == "SAMPLER":
                    required[key] = [SAMPLERS, {}]
                elif kind == "SCHEDULER":
                    required[key] = [SCHEDULERS, {}]
                elif kind == "UPLOAD":
                    required[key] = [sorted(self.uploads), {"image_upload": True}]
                elif isinstance(kind, list):
                    required[key] = [kind, {}]
                else:
                    required[key] = [kind, {}]
            info[name] = {"input": {"required": required}, "input_order": {"required": list(required)},
                          "output": [], "name": name, "display_name": name, "category": "sd",
                          "output_node": name in OUTPUT_NODES}
        return web.json_response(info)

    async def upload(self, request):
        """POST /upload/image (multipart: image, type, overwrite)."""
        form = await request.post()
        image = form.get("image")
        if image is None or not getattr(image, "filename", None):
            return web.Response(status=400)
        self.uploads[image.filename] = image.file.read()
        return web.json_response({"name": image.filename, "subfolder": "", "type": "input"})

    async def post_prompt(self, request):
        """POST /prompt: validate as execution.validate_prompt does, queue, answer prompt_id and number."""
        body = await request.json()
        if self.refuse_next is not None:
            refusal, self.refuse_next = self.refuse_next, None
            return web.json_response(refusal, status=400)
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return web.json_response({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                                                "extra_info": {}}, "node_errors": {}}, status=400)
        error = self._validate(prompt)
        if error is not None:
            return web.json_response(error, status=400)
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        number = self.number
        self.number += 1
        self.received.append(body)
        if self.lose_next:
            self.lose_next -= 1  # accepted, then forgotten: neither queued nor in the history
        else:
            self.pending.append((number, prompt_id, prompt, {"client_id": body.get("client_id")}, [], ))
            self._work.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _validate(self, prompt: dict) -> dict | None:
        for node_id, node in prompt.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type not in NODE_INPUTS or class_type in self.missing_nodes:
                return {"error": {"type": "missing_node_type",
                                  "message": f"Node '{class_type}' not found. The custom node may not be installed.",
                                  "details": f"Node ID '#{node_id}'",
                                  "extra_info": {"node_id": node_id, "class_type": class_type,
                                                 "node_title": class_type}}, "node_errors": {}}
        node_errors = {}
        for node_id, node in prompt.items():
            errors = []
            inputs = node.get("inputs", {})
            for key, kind in NODE_INPUTS[node["class_type"]].items():
                if key == "noise_mask" and (not self.noise_mask_input or key not in inputs):
                    continue
                if key not in inputs:
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": key, "extra_info": {"input_name": key}})
                    continue
                value = inputs[key]
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    if value[0] not in prompt:
                        errors.append({"type": "bad_linked_input", "message": "Bad linked input", "details": key})
                    continue
                combos = {"CKPT": self.checkpoints, "SAMPLER": SAMPLERS, "SCHEDULER": SCHEDULERS}
                allowed = kind if isinstance(kind, list) else combos.get(kind)
                if isinstance(allowed, list) and value not in allowed:
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{key}: '{value}' not in {allowed}",
                                   "extra_info": {"input_name": key, "received_value": value}})
                if kind == "UPLOAD" and value not in self.uploads:
                    errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                   "details": f"image - Invalid image file: {value}"})
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
        if not any(node["class_type"] in OUTPUT_NODES for node in prompt.values()):
            return {"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                              "extra_info": {}}, "node_errors": []}
        if node_errors:
            return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                              "details": "", "extra_info": {}}, "node_errors": node_errors}
        return None

    async def get_queue(self, request):
        """GET /queue: queue_running and queue_pending as [number, prompt_id, prompt, extra_data, outputs]."""
        running = [list(self.running)] if self.running else []
        return web.json_response({"queue_running": running, "queue_pending": [list(item) for item in self.pending]})

    async def post_queue(self, request):
        """POST /queue {"delete": [ids]} or {"clear": true}."""
        body = await request.json()
        if body.get("clear"):
            self.pending.clear()
        for prompt_id in body.get("delete", []):
            self.pending = [item for item in self.pending if item[1] != prompt_id]
        return web.Response(status=200)

    async def interrupt(self, request):
        """POST /interrupt, optionally {"prompt_id": id}: stop the running prompt (only that one, if named)."""
        try:
            body = await request.json()
        except ValueError:
            body = {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running and (wanted is None or wanted == self.running[1]):
            self._interrupt = True
        return web.Response(status=200)

    async def get_history(self, request):
        """GET /history/{prompt_id}: {} until the prompt has finished."""
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def view(self, request):
        """GET /view?filename&subfolder&type."""
        key = f"{request.query.get('type', 'output')}/{request.query.get('subfolder', '')}/{request.query.get('filename')}"
        if key not in self.outputs:
            return web.Response(status=404)
        return web.Response(body=self.outputs[key], content_type="image/png")

    async def websocket(self, request):
        """GET /ws?clientId=: a status message, then everything sent to that client."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws
        try:
            await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": len(self.pending)}},
                                                           "sid": sid}})
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            if self.sockets.get(sid) is ws:
                self.sockets.pop(sid, None)
        return ws

    async def send(self, kind: str, data: dict, sid: str | None) -> None:
        ws = self.sockets.get(sid) if sid else None
        if ws is not None and not ws.closed:
            try:
                await ws.send_json({"type": kind, "data": data})
            except (ConnectionError, RuntimeError):
                pass

    async def send_preview(self, sid: str | None) -> None:
        ws = self.sockets.get(sid) if sid else None
        if ws is None or ws.closed:
            return
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format="JPEG", quality=90)
        try:
            await ws.send_bytes(struct.pack(">I", 1) + struct.pack(">I", 1) + buffer.getvalue())
        except (ConnectionError, RuntimeError):
            pass

    async def drop_sockets(self) -> None:
        for ws in list(self.sockets.values()):
            await ws.close()
        self.sockets.clear()

    # --- the worker ----------------------------------------------------------------------------------------

    async def worker(self) -> None:
        """Run queued prompts one at a time, in order, as main.py's prompt_worker does."""
        while True:
            if not self.pending:
                self._work.clear()
                await self._work.wait()
                continue
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
            if not self.pending:
                continue
            self.running = self.pending.pop(0)
            prompt_id, prompt, extra = self.running[1:4]
            try:
                await self._execute(prompt_id, prompt, extra)
            except Exception as exc:  # noqa: BLE001 - a node raised: reported as execution.py does
                data = {"prompt_id": prompt_id, "node_id": "?", "node_type": "?", "executed": [],
                        "exception_message": str(exc), "exception_type": type(exc).__name__}
                await self.send("execution_error", data, extra.get("client_id"))
                self._finish(prompt_id, prompt, {}, "error", [["execution_error", data]])
                await self.send("executing", {"node": None, "prompt_id": prompt_id}, extra.get("client_id"))
            finally:
                self.running = None

    async def _execute(self, prompt_id: str, prompt: dict, extra: dict) -> None:
        sid = extra.get("client_id")
        self._interrupt = False
        messages = [["execution_start", {"prompt_id": prompt_id}]]
        await self.send("execution_start", {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)}, sid)
        await self.send("execution_cached", {"nodes": [], "prompt_id": prompt_id}, sid)
        order = sorted(prompt, key=int)
        sampler = next((n for n in order if prompt[n]["class_type"] == "KSampler"), None)
        steps = int(prompt[sampler]["inputs"]["steps"]) if sampler else 1
        outputs = {}
        for node_id in order:
            class_type = prompt[node_id]["class_type"]
            await self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid)
            if node_id == sampler:
                for step in range(1, steps + 1):
                    await asyncio.sleep(self.gpu_time / steps)
                    if self._interrupt:
                        data = {"prompt_id": prompt_id, "node_id": node_id, "node_type": class_type, "executed": []}
                        await self.send("execution_interrupted", data, sid)
                        self._finish(prompt_id, prompt, {}, "error", messages + [["execution_interrupted", data]])
                        await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)
                        return
                    if self.fail_at_step == step:
                        self.fail_at_step = None
                        data = {"prompt_id": prompt_id, "node_id": node_id, "node_type": class_type, "executed": [],
                                "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB\n",
                                "exception_type": "torch.OutOfMemoryError", "traceback": ["..."],
                                "current_inputs": {}, "current_outputs": {}}
                        await self.send("execution_error", data, sid)
                        self._finish(prompt_id, prompt, {}, "error", messages + [["execution_error", data]])
                        await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)
                        return
                    await self.send("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id},
                                    sid)
                    await self.send_preview(sid)
                    if self.drop_sockets_at_step == step:
                        self.drop_sockets_at_step = None
                        await self.drop_sockets()
            if class_type == "SaveImage":
                name = f"sd-studio_{self.number:05}_{len(self.outputs):05}_.png"
                self.outputs[f"output/sd-studio/{name}"] = self._render(prompt)
                images = [{"filename": name, "subfolder": "sd-studio", "type": "output"}]
                outputs[node_id] = {"images": images}
                await self.send("executed", {"node": node_id, "display_node": node_id, "output": {"images": images},
                                             "prompt_id": prompt_id}, sid)
        await self.send("execution_success", {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)}, sid)
        self._finish(prompt_id, prompt, outputs, "success", messages + [["execution_success", {"prompt_id": prompt_id}]])
        await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)

    def _finish(self, prompt_id, prompt, outputs, status, messages) -> None:
        self.history[prompt_id] = {"prompt": [0, prompt_id, prompt, {}, []], "outputs": outputs,
                                   "status": {"status_str": status, "completed": status == "success",
                                              "messages": messages}, "meta": {}}
        self.finished.append(prompt_id)

    def _render(self, prompt: dict) -> bytes:
        """The result: the loaded image inverted XOR a seed-derived value, or a prompt-derived pattern."""
        nodes = {node["class_type"]: node["inputs"] for node in prompt.values()}
        seed = int(nodes.get("KSampler", {}).get("seed", 0))
        if self.fixed_result:  # the benchmarks' server: one grey picture per size, made once
            if "LoadImage" in nodes:
                with Image.open(io.BytesIO(self.uploads[nodes["LoadImage"]["image"]])) as source:
                    size = source.size  # read from the header; the pixels are never decoded
            else:
                size = (int(nodes["EmptyLatentImage"]["width"]), int(nodes["EmptyLatentImage"]["height"]))
            if size not in self._fixed:
                buffer = io.BytesIO()
                Image.new("RGB", size, (128, 128, 128)).save(buffer, format="PNG")
                self._fixed[size] = buffer.getvalue()
            return self._fixed[size]
        if "LoadImage" in nodes:
            with Image.open(io.BytesIO(self.uploads[nodes["LoadImage"]["image"]])) as source:
                pixels = np.asarray(source.convert("RGB"))
            out = (255 - pixels) ^ np.uint8(seed % 251)
        else:
            width, height = int(nodes["EmptyLatentImage"]["width"]), int(nodes["EmptyLatentImage"]["height"])
            text = next((n["inputs"]["text"] for n in prompt.values() if n["class_type"] == "CLIPTextEncode"), "")
            colour = np.frombuffer(hashlib.sha256(f"{text}|{seed}".encode()).digest()[:3], np.uint8)
            out = np.broadcast_to(colour, (height, width, 3)).copy()
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(out)).save(buffer, format="PNG")
        return buffer.getvalue()

    # --- running it ----------------------------------------------------------------------------------------

    async def start(self, port: int = 0, ssl_context=None) -> int:
        """Listen on 127.0.0.1 (port 0: any free one) and start the worker; returns the port."""
        self._work = asyncio.Event()
        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._worker = asyncio.get_running_loop().create_task(self.worker())
        return self.port

    async def stop(self) -> None:
        """Stop at once: sockets closed, the port freed, the queue forgotten (a crashed or restarted server)."""
        self._worker.cancel()
        await self.drop_sockets()
        await self._runner.cleanup()
        self.pending.clear()

    def serve(self, ssl_context=None) -> str:
        """Run on a thread of its own; returns the base URL."""
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start(ssl_context=ssl_context))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake ComfyUI", daemon=True)
        self._thread.start()
        ready.wait(10)
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"

    def call(self, coroutine):
        """Run a coroutine on the server's loop (from a test's thread) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def shutdown(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):  # already stopped
            self.call(self.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def main(argv=None) -> int:
    """Serve on 127.0.0.1 until killed; prints `PORT <n>` when listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gpu-time", type=float, default=0.0, help="seconds each job takes")
    parser.add_argument("--fixed", action="store_true", help="answer every job with one grey picture of its size")
    args = parser.parse_args(argv)
    server = FakeComfyUI(gpu_time=args.gpu_time, fixed_result=args.fixed)

    async def run():
        port = await server.start(args.port)
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
