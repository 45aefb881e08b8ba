"""ComfyUI backend: what our client adds to a job's round trip, queues that keep order, a pool that scales and survives.

1. Round trip: one 512 x 512 inpaint job (upload region and mask, queue, follow the socket, fetch the
   result, decode it) through ComfyBackend.run against a minimal client doing the same HTTP and websocket
   calls with aiohttp directly; both against the same in-process ComfyUI stand-in (tests/engine/fake_comfyui.py)
   answering at once with a fixed-size image. Alternated job by job; medians compared.
2. 50 jobs submitted at once to one server: every one comes back, and the server ran them in the order
   they were submitted.
3. Three stand-in servers as separate processes, each job taking 1 s of simulated GPU time (a 512 x 512
   SD 1.5 job on a desktop GPU takes about that): 18 jobs on a
   pool of three against the same on a pool of one; then the pool of three again with one server killed
   after the first results (its jobs are sent elsewhere: the dead-server wait is set to 2 s here, 15 s by default).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

from fake_comfyui import FakeComfyUI

from sd_studio.engine.backends.base import BackendJob
from sd_studio.engine.backends.comfyui.backend import ComfyBackend
from sd_studio.engine.backends.comfyui.server import Timeouts
from sd_studio.engine.backends.comfyui.workflow import ServerInfo, build_graph
from sd_studio.engine.backends.images import decode_image, encode_png

SIZE = 512
ROUND_TRIPS = 40
QUEUED = 50
GPU_TIME = 1.0
POOL_JOBS = 18


def job(seed: int = 1, steps: int = 1, noise: bool = True) -> BackendJob:
    """A 512 x 512 inpaint job with a square mask: random pixels (the worst case for PNG), or a photo-like
    gradient with a little noise."""
    rng = np.random.default_rng(seed)
    if noise:
        image = rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    else:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        image = np.stack([xx // 2, yy // 2, (xx + yy) // 4], axis=-1).astype(np.uint8)
        image += rng.integers(0, 8, image.shape, np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[128:384, 128:384] = 255
    return BackendJob("inpaint", image, mask, "a cat", "", steps, 7.0, 1.0, (seed,), "Euler a", SIZE, SIZE)


class RawClient:
    """The baseline: ComfyUI's websocket example done with aiohttp on a loop of its own, nothing else."""

    def __init__(self, url: str, info: ServerInfo) -> None:
        self.url, self.info = url, info
        self.client_id = uuid.uuid4().hex
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self._open())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _open(self):
        import aiohttp

        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(f"{self.url.replace('http', 'ws', 1)}/ws?clientId={self.client_id}")

    def run(self, work: BackendJob) -> np.ndarray:
        """Encode, upload, queue, wait for the end on the socket, read the history, fetch and decode."""
        image, mask = encode_png(work.image), encode_png(work.mask)
        return self.call(self._run(work, image, mask))

    async def _upload(self, data: bytes, name: str) -> str:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        async with self.session.post(f"{self.url}/upload/image", data=form) as response:
            return (await response.json())["name"]

    async def _run(self, work: BackendJob, image: bytes, mask: bytes) -> np.ndarray:
        name = uuid.uuid4().hex
        image_name = await self._upload(image, f"raw-{name}.png")
        mask_name = await self._upload(mask, f"raw-{name}-mask.png")
        graph = build_graph(work, work.seeds[0], self.info, "sd15.safetensors", "raw", image_name, mask_name)
        async with self.session.post(f"{self.url}/prompt", json={"prompt": graph, "client_id": self.client_id}) as r:
            prompt_id = (await r.json())["prompt_id"]
        async for message in self.ws:
            if message.type.name == "TEXT":
                data = message.json()
                if data["type"] == "executing" and data["data"].get("node") is None \
                        and data["data"].get("prompt_id") == prompt_id:
                    break
        async with self.session.get(f"{self.url}/history/{prompt_id}") as r:
            history = await r.json()
        picture = history[prompt_id]["outputs"]["11"]["images"][0]
        async with self.session.get(f"{self.url}/view", params=picture) as r:
            return decode_image(await r.read(), 16384)

    def close(self) -> None:
        async def shut():
            await self.ws.close()
            await self.session.close()

        self.call(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)


def round_trip() -> None:
    """Line 1: ours against raw aiohttp, alternated."""
    server = FakeComfyUI(fixed_result=True)
    url = server.serve()
    backend = ComfyBackend([url])
    model = backend.prepare("sd15")
    raw = RawClient(url, backend._loop.call(backend._servers[0].info()))
    ours, theirs = [], []
    try:
        for i in range(ROUND_TRIPS + 4):
            work = job(i)
            timed = {}
            runs = [("ours", lambda w=work: backend.run(model, w)), ("raw", lambda w=work: raw.run(w))]
            for name, run in runs if i % 2 else runs[::-1]:  # alternated: a drift in the load hits both alike
                start = time.perf_counter()
                run()
                timed[name] = time.perf_counter() - start
            if i >= 4:  # the first jobs warm both up
                ours.append(timed["ours"])
                theirs.append(timed["raw"])
    finally:
        raw.close()
        backend.close()
        server.shutdown()
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"comfyui round trip per job, ours / raw aiohttp: {a / b:.3f} ({a * 1000:.1f} ms vs {b * 1000:.1f} ms, "
          f"medians of {ROUND_TRIPS}) (target <= 1.1)", flush=True)


def queued_in_order() -> None:
    """Line 2: 50 jobs at once on one server."""
    server = FakeComfyUI()
    url = server.serve()
    backend = ComfyBackend([url])
    model = backend.prepare("sd15")
    try:
        server.hold.clear()  # everything queues before anything runs
        jobs = [backend.submit(model, job(i)) for i in range(QUEUED)]
        deadline = time.monotonic() + 60
        while len(server.pending) < QUEUED and time.monotonic() < deadline:
            time.sleep(0.01)
        server.hold.set()
        results = [j.wait() for j in jobs]
        seeds = [server.call(_seed_of(server, prompt_id)) for prompt_id in server.finished]
    finally:
        backend.close()
        server.shutdown()
    lost = QUEUED - sum(1 for r in results if r and r[0].shape == (SIZE, SIZE, 3))
    in_order = seeds == list(range(QUEUED))
    print(f"comfyui 50 queued jobs: {lost} lost, run in submission order: {'yes' if in_order else 'no'} "
          "(target 0 lost, in order)", flush=True)


async def _seed_of(server, prompt_id: str) -> int:
    prompt = server.history[prompt_id]["prompt"][2]
    return next(node["inputs"]["seed"] for node in prompt.values() if node["class_type"] == "KSampler")


def start_servers(count: int) -> list[tuple[subprocess.Popen, str]]:
    """Stand-in servers as processes of their own; each prints its port."""
    started = []
    for _ in range(count):
        process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "engine" / "fake_comfyui.py"),
                                    "--gpu-time", str(GPU_TIME), "--fixed"], stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline().split()
        started.append((process, f"http://127.0.0.1:{line[1]}"))
    return started


def pool_run(urls: list[str], kill=None) -> tuple[float, int, float]:
    """Seconds for POOL_JOBS one-variant jobs submitted at once, how many came back, and our CPU seconds per job."""
    backend = ComfyBackend(urls, timeouts=Timeouts(poll=0.25, dead=2.0))
    model = backend.prepare("sd15")
    try:
        work = [job(i, steps=4, noise=False) for i in range(POOL_JOBS)]  # the pictures exist before the clock runs
        start, cpu = time.perf_counter(), time.process_time()
        jobs = [backend.submit(model, w) for w in work]
        done = 0
        for index, submitted in enumerate(jobs):
            if submitted.wait():
                done += 1
            if kill is not None and index == 2:
                kill()
        return time.perf_counter() - start, done, (time.process_time() - cpu) / POOL_JOBS
    finally:
        backend.close()


def pool() -> None:
    """Line 3: pool of three against one, then a server killed mid-run."""
    servers = start_servers(3)
    try:
        urls = [url for _, url in servers]
        one, done_one, _ = pool_run(urls[:1])
        three, done_three, cpu = pool_run(urls)
        print(f"comfyui throughput, pool of 3 / 1 server: {one / three:.2f} ({POOL_JOBS} jobs of {GPU_TIME} s: "
              f"{three:.2f} s vs {one:.2f} s; {done_three} and {done_one} of {POOL_JOBS} back; the client's CPU "
              f"{cpu * 1000:.0f} ms a job) (target >= 2.5)", flush=True)
        victim = servers[1][0]
        killed, done_killed, _ = pool_run(urls, kill=victim.kill)
        print(f"comfyui pool of 3, one killed mid-run: {done_killed} of {POOL_JOBS} jobs finished in {killed:.2f} s "
              f"(target: all)", flush=True)
    finally:
        for process, _ in servers:
            process.kill()
            process.wait()


def main() -> int:
    """Print the figures."""
    round_trip()
    queued_in_order()
    pool()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
