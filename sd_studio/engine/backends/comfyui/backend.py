"""ComfyUI servers as a Backend: one server, or several used as one pool.

Every variant (seed) of a job is its own prompt, so a seed reproduces its image and variants spread over
the pool: each goes to the server with the shortest queue (GET /queue, everyone's jobs, plus ours on
the way there). Servers are chosen in the order jobs were submitted and each server queues its prompts
in the order it was chosen for them, so jobs finish in submission order on a server; uploads of
different jobs run side by side. A variant whose server stops answering, or forgets the prompt, is sent again to another
server (or the same one when it is alone), up to `attempts` times; a refusal (a missing node or model, a
bad token) is not retried. All network work runs on a private event loop; the waiting engine thread only
receives progress, so nothing needs Qt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sd_studio.engine.backends.base import Backend, BackendError, BackendJob, Capabilities, EventJob, RemoteModel
from sd_studio.engine.backends.comfyui.protocol import ServerAddress
from sd_studio.engine.backends.comfyui.server import (
    DEFAULT_TIMEOUTS,
    ComfyServer,
    JobLost,
    ServerReport,
    ServerUnreachable,
    Timeouts,
    decode_result,
)
from sd_studio.engine.backends.comfyui.workflow import ServerInfo, build_graph, native_resolution
from sd_studio.engine.backends.images import encode_png
from sd_studio.engine.backends.loop import LoopThread
from sd_studio.engine.backends.settings import ComfyServerSettings
from sd_studio.engine.request import Progress
from sd_studio.errors import Cancelled

COMFY_CONTROLS = ("negative prompt", "steps", "guidance", "strength", "seed")
"""The settings a ComfyUI job honours beyond the prompt (LoRAs would need the files on the server)."""


@dataclass(frozen=True)
class _Upload:
    image: str | None
    mask: str | None


class ComfyBackend(Backend):
    """One or several ComfyUI servers behind the Backend interface."""

    kind = "comfyui"

    def __init__(self, servers: Sequence[ComfyServerSettings | str], timeouts: Timeouts = DEFAULT_TIMEOUTS,
                 attempts: int = 3) -> None:
        if not servers:
            raise BackendError("Give at least one ComfyUI server address.")
        settings = [ComfyServerSettings(s) if isinstance(s, str) else s for s in servers]
        self._servers = [ComfyServer(ServerAddress.parse(s.url), s.token, timeouts, _tls(s)) for s in settings]
        labels = [server.label for server in self._servers]
        if len(set(labels)) != len(labels):
            raise BackendError("The same ComfyUI server is listed twice.")
        self._timeouts = timeouts
        self._attempts = max(1, attempts)
        self._loop = LoopThread("sd-studio ComfyUI")
        self._capabilities: Capabilities | None = None
        self._turn = 0
        self._posting: asyncio.Lock | None = None

    @property
    def label(self) -> str:
        """"ComfyUI at gpu-box:8188", or "ComfyUI pool of 3 servers"."""
        if len(self._servers) == 1:
            return f"ComfyUI at {self._servers[0].label}"
        return f"ComfyUI pool of {len(self._servers)} servers"

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers' labels, in the order given."""
        return tuple(server.label for server in self._servers)

    # --- what the servers offer ------------------------------------------------------------------------------

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """What the answering servers all offer (a job may land on any of them)."""
        if self._capabilities is None or refresh:
            self._capabilities = self._loop.call(self._gather_capabilities(refresh))
        return self._capabilities

    async def _gather_capabilities(self, refresh: bool) -> Capabilities:
        infos = await asyncio.gather(*(s.info(refresh) for s in self._servers), return_exceptions=True)
        stats = await asyncio.gather(*(s.system_stats() for s in self._servers), return_exceptions=True)
        answered = [(server, info, stat) for server, info, stat in zip(self._servers, infos, stats)
                    if isinstance(info, ServerInfo)]
        if not answered:
            raise _first_error(infos, self.label)
        from sd_studio.engine.backends.comfyui.protocol import describe_device

        modes = _common(info.modes() for _, info, _ in answered)
        models = _common(info.checkpoints for _, info, _ in answered)
        samplers = _common(info.our_samplers() for _, info, _ in answered)
        schedulers = _common(info.samplers + info.schedulers for _, info, _ in answered)
        devices = [describe_device(stat) if isinstance(stat, dict) else "?" for _, _, stat in answered]
        return Capabilities(modes=modes, models=models, samplers=samplers, schedulers=schedulers,
                            controls=COMFY_CONTROLS, device="; ".join(devices))

    def test(self) -> list[ServerReport | BackendError]:
        """Each server's report (device, version, checkpoints, samplers) or the error it gave: the Test button."""
        async def one(server: ComfyServer):
            try:
                return await server.report()
            except BackendError as exc:
                return exc

        async def every():
            return list(await asyncio.gather(*(one(s) for s in self._servers)))

        return self._loop.call(every())

    def prepare(self, model, *, device="auto", precision="auto", progress=None) -> RemoteModel:
        """The checkpoint to run (named, or the servers' first), checked against what they offer."""
        if progress is not None:
            progress(Progress("connecting", 0, 1, message=f"asking {self.label}"))
        infos = self._loop.call(self._infos())
        live = [(server, info) for server, info in zip(self._servers, infos) if isinstance(info, ServerInfo)]
        if not live:
            raise _first_error(infos, self.label)
        checkpoint, first_error = None, None
        for server, info in live:
            try:
                checkpoint = info.checkpoint(model, server.label)
                break
            except BackendError as exc:
                first_error = first_error or exc
        if checkpoint is None:
            raise first_error
        return RemoteModel(name=checkpoint, native_resolution=native_resolution(checkpoint), device=self.label)

    async def _infos(self):
        return await asyncio.gather(*(s.info() for s in self._servers), return_exceptions=True)

    def record(self, model) -> dict:
        """"Backend: ComfyUI" (the servers' addresses are not recorded: they are the user's network, not the image's)."""
        return {"Backend": "ComfyUI"}

    # --- jobs ------------------------------------------------------------------------------------------------

    def submit(self, model: RemoteModel, job: BackendJob) -> EventJob:
        """Queue every variant on the pool now; the job reports on the caller's thread in wait()."""
        task_holder: dict = {}

        def on_cancel() -> None:
            task = task_holder.get("task")
            if task is not None:
                self._loop.loop.call_soon_threadsafe(task.cancel)

        # results are decoded on the waiting thread: a large PNG would hold up every server's messages here
        events = EventJob(on_cancel, convert=lambda encoded: [decode_result(data) for data in encoded])
        # encoded here, on the caller's thread, so the network loop never stalls on it
        pngs = (encode_png(job.image) if job.image is not None else None,
                encode_png(job.mask) if job.mask is not None else None)

        async def start():
            task_holder["task"] = asyncio.current_task()
            try:
                events.finish(await self._run(model, job, pngs, events))
            except asyncio.CancelledError:
                events.fail(Cancelled("Generation cancelled; nothing was changed."))
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the waiting thread
                events.fail(exc)

        self._loop.spawn(start())
        return events

    async def _run(self, model: RemoteModel, job: BackendJob, pngs, events: EventJob) -> list[bytes]:
        if self._posting is None:
            self._posting = asyncio.Lock()
        count = len(job.seeds)
        done = [0] * count
        totals = [job.steps] * count
        uploads: dict[ComfyServer, asyncio.Task] = {}
        image_png, mask_png = pngs
        name = uuid.uuid4().hex

        def report(index: int, progress: Progress) -> None:
            if progress.phase == "denoising" and progress.total > 0:
                done[index], totals[index] = progress.step, progress.total
            label = f"variant {index + 1} of {count}" if count > 1 else progress.message
            events.report(Progress(progress.phase, sum(done), max(1, sum(totals)), progress.preview, label))

        async def uploaded(server: ComfyServer) -> _Upload:
            if server not in uploads:  # one upload per server and job, whatever the variants
                async def send() -> _Upload:
                    image = await server.upload(image_png, f"sd-studio-{name}.png") if image_png else None
                    mask = await server.upload(mask_png, f"sd-studio-{name}-mask.png") if mask_png else None
                    return _Upload(image, mask)

                uploads[server] = asyncio.get_running_loop().create_task(send())
            try:
                return await asyncio.shield(uploads[server])
            except BaseException:
                uploads.pop(server, None)
                raise

        async def variant(index: int, seed: int) -> bytes:
            tried: list[ComfyServer] = []
            last_error: BackendError | None = None
            for attempt in range(self._attempts):
                # servers are chosen one variant at a time, in the order jobs were submitted, and each choice
                # counts the prompts already heading for a server; uploads then run side by side, and each
                # server takes its prompts in the order it was chosen for them (its tickets)
                async with self._posting:
                    try:
                        server = await self._pick(model.name, avoid=tried)
                    except BackendError as exc:
                        last_error = last_error or exc
                        break
                    ticket = server.take_ticket()
                try:
                    files = await uploaded(server)
                    graph = build_graph(job, seed, await server.info(), model.name, server.label,
                                        image=files.image, mask=files.mask)
                    await server.wait_turn(ticket)
                    prompt_id = await server.queue(graph)
                except (ServerUnreachable, JobLost) as exc:
                    last_error = exc
                    tried.append(server)
                    server.down_until = asyncio.get_running_loop().time() + self._timeouts.dead
                    continue
                finally:
                    await server.end_ticket(ticket)
                if attempt:
                    events.report(Progress("retrying", sum(done), max(1, sum(totals)),
                                           message=f"sent variant {index + 1} again, to {server.label}"))
                try:
                    images = await server.finish(prompt_id, lambda p: report(index, p))
                    return images[0]
                except (ServerUnreachable, JobLost) as exc:
                    last_error = exc
                    tried.append(server)
                    if isinstance(exc, ServerUnreachable):
                        server.down_until = asyncio.get_running_loop().time() + self._timeouts.dead
            if len(self._servers) > 1:
                raise BackendError(f"No server of {self.label} could finish the job ({last_error}).",
                                   retryable=True)
            raise last_error

        tasks = [asyncio.get_running_loop().create_task(variant(i, seed)) for i, seed in enumerate(job.seeds)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _pick(self, checkpoint: str, avoid: list[ComfyServer]) -> ComfyServer:
        """The server with the shortest queue among those that answer and have the checkpoint; BackendError if none.

        A server already tried for this variant is used again only when nothing else is left (a lone
        server that lost a job gets it again).
        """
        now = asyncio.get_running_loop().time()
        candidates = [s for s in self._servers if s.down_until <= now and s not in avoid]
        if not candidates:
            candidates = [s for s in self._servers if s in avoid and s.down_until <= now]
        if not candidates and len(self._servers) == 1 and avoid:
            candidates = list(self._servers)  # alone: wait for it (its own dead timeout decides)
        infos = await asyncio.gather(*(s.info() for s in candidates), return_exceptions=True)
        if len(candidates) == 1 and isinstance(infos[0], ServerInfo) and checkpoint in infos[0].checkpoints:
            return candidates[0]  # nothing to compare: no need to ask for its queue
        errors = [info for info in infos if isinstance(info, BaseException)]
        for server, info in zip(candidates, infos):
            if isinstance(info, ServerUnreachable):
                server.down_until = now + self._timeouts.dead
        candidates = [s for s, info in zip(candidates, infos)
                      if isinstance(info, ServerInfo) and checkpoint in info.checkpoints]
        lengths = await asyncio.gather(*(s.queue_length() for s in candidates), return_exceptions=True)
        ranked = []
        for order, (server, length) in enumerate(zip(candidates, lengths)):
            if isinstance(length, BaseException):
                errors.append(length)
                if isinstance(length, ServerUnreachable):
                    server.down_until = now + self._timeouts.dead
            else:
                # equal queues: take turns, so variants spread even over idle servers
                ranked.append((length + server.assigned, (order - self._turn) % len(candidates), server))
        if not ranked:
            if errors:
                raise _first_error(errors, self.label)
            raise BackendError(f"No server of {self.label} that answers has the checkpoint {checkpoint!r}.",
                               retryable=True)
        self._turn += 1
        return min(ranked, key=lambda entry: entry[:2])[2]

    def close(self) -> None:
        """Close every server's connections and stop the event loop."""
        async def close_all():
            await asyncio.gather(*(s.close() for s in self._servers), return_exceptions=True)

        with contextlib.suppress(Exception):  # closing must not fail the caller
            self._loop.call(close_all(), timeout=5)
        self._loop.stop()


def _tls(settings: ComfyServerSettings) -> ssl_module.SSLContext | None:
    """The TLS context for a server: its CA file, or no checks when the user turned them off; None: the system's."""
    if not settings.ca_file and settings.verify_tls:
        return None
    try:
        context = ssl_module.create_default_context(cafile=settings.ca_file or None)
    except (OSError, ssl_module.SSLError):
        raise BackendError(f"The CA file {settings.ca_file} cannot be read as PEM certificates.") from None
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def _common(groups) -> tuple[str, ...]:
    """What every group has, in the first group's order."""
    groups = [tuple(group) for group in groups]
    if not groups:
        return ()
    rest = [set(group) for group in groups[1:]]
    return tuple(item for item in groups[0] if all(item in other for other in rest))


def _first_error(results, label: str) -> BackendError:
    for result in results:
        if isinstance(result, BackendError):
            return result
    for result in results:
        if isinstance(result, BaseException):
            return BackendError(f"{label} failed ({type(result).__name__}).")
    return BackendError(f"{label} does not answer.")
