"""One ComfyUI server, spoken to as ComfyUI's own frontend does: HTTP routes plus the /ws progress socket.

A `ComfyServer` lives on a private event loop (backends/loop.py). It keeps one websocket open per client
id, reconnecting after a drop; each queued prompt has a watcher that receives its messages. A job never
depends on the socket alone: when the socket is quiet or comes back, /history and /queue say whether the
prompt finished, still runs, or was dropped by the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl as ssl_module
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sd_studio.engine.backends.base import BackendError, clean_text
from sd_studio.engine.backends.comfyui.protocol import (
    ServerAddress,
    describe_device,
    execution_error_text,
    parse_preview,
    queued_prompt_ids,
    read_history,
    refusal,
)
from sd_studio.engine.backends.comfyui.workflow import OUTPUT_NODE, ServerInfo
from sd_studio.engine.backends.images import decode_image
from sd_studio.engine.request import Progress

MAX_JSON_BYTES = 64 * 2**20
"""The largest JSON answer read (a server with thousands of nodes sends a few MB of /object_info)."""

MAX_RESULT_SIDE = 16384
"""A result image larger than this on a side is refused before it is decoded."""

ORPHANS_KEPT = 64
"""Messages kept per unknown prompt id, for a prompt whose first messages arrive before its POST returns."""


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for a server, in seconds (tests shorten them; a user's slow GPU box may want longer)."""

    connect: float = 10.0
    """To open a connection."""
    request: float = 120.0
    """For one HTTP request (an upload, a result download)."""
    poll: float = 2.0
    """Without news of a prompt before asking /history and /queue about it."""
    idle: float = 600.0
    """A running prompt may go this long without progress before it is given up."""
    dead: float = 15.0
    """A server may stay unreachable this long before its jobs are given up (or sent elsewhere)."""
    reconnect: float = 0.25
    """The first wait before reconnecting a dropped socket; it doubles up to 4 s."""


DEFAULT_TIMEOUTS = Timeouts()


class ServerUnreachable(BackendError):
    """The server did not answer (refused, timed out, dropped); the job may succeed elsewhere or later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class JobLost(BackendError):
    """The server accepted the prompt, then forgot it (restarted, queue cleared); sending it again may work."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class ServerReport:
    """A server as the Test button shows it: where it runs, what it offers."""

    label: str
    device: str
    version: str
    checkpoints: tuple[str, ...]
    samplers: tuple[str, ...]
    modes: tuple[str, ...]
    websocket: bool
    """False when the progress socket could not be opened (jobs still run, polled over HTTP)."""


class ComfyServer:
    """A client of one ComfyUI server; every method runs on the backend's event loop."""

    def __init__(self, address: ServerAddress, token: str = "", timeouts: Timeouts = DEFAULT_TIMEOUTS,
                 ssl: ssl_module.SSLContext | None = None) -> None:
        self.address = address
        self.timeouts = timeouts
        self.client_id = uuid.uuid4().hex
        self._token = token
        self._ssl = ssl
        self._session = None
        self._listener: asyncio.Task | None = None
        self._watchers: dict[str, asyncio.Queue] = {}
        self._orphans: dict[str, deque] = defaultdict(lambda: deque(maxlen=ORPHANS_KEPT))
        self._executing: str | None = None
        self._info: ServerInfo | None = None
        self.socket_open = False
        self.assigned = 0
        """Prompts the pool chose this server for that are not queued there yet."""
        self._tickets = 0
        self._turn = 0
        self._ended: set[int] = set()
        self._turn_changed: asyncio.Condition | None = None
        self.down_until = 0.0
        """Loop time until which the pool leaves this server alone after it stopped answering."""

    @property
    def label(self) -> str:
        """"gpu-box:8188"."""
        return self.address.label

    # --- connection ---------------------------------------------------------------------------------------

    async def _client(self):
        if self._session is None or self._session.closed:
            import aiohttp

            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect,
                                            sock_read=self.timeouts.request)
            self._session = aiohttp.ClientSession(headers=headers, timeout=timeout)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        return self._session

    async def close(self) -> None:
        """Stop listening and close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.socket_open = False

    async def _request(self, method: str, path: str, *, body=None, form=None, params=None, read: str = "json"):
        """One HTTP request; ServerUnreachable when the server does not answer, BackendError when it refuses."""
        import aiohttp

        session = await self._client()
        try:
            async with session.request(method, self.address.url(path), json=body, data=form, params=params,
                                       ssl=self._ssl if self._ssl is not None else True) as response:
                if response.status in (401, 403):
                    raise BackendError(
                        f"The ComfyUI server at {self.label} refused the token (HTTP {response.status}); "
                        "check the token in Settings > Engines." if self._token else
                        f"The ComfyUI server at {self.label} wants a token (HTTP {response.status}); "
                        "add it in Settings > Engines (or --token).")
                if response.status == 400 and path == "/prompt":
                    raise refusal(await self._json(response, quiet=True), self.label)
                if response.status >= 400:
                    raise BackendError(f"The ComfyUI server at {self.label} answered HTTP {response.status} "
                                       f"to {path.split('?')[0]}.", retryable=response.status >= 500)
                if read == "json":
                    return await self._json(response)
                if read == "bytes":
                    return await self._bytes(response, MAX_JSON_BYTES)
                return None
        except aiohttp.ClientConnectorCertificateError:
            raise BackendError(f"The ComfyUI server at {self.label} has a TLS certificate this computer does not "
                               "trust; add its CA file in Settings > Engines.") from None
        except aiohttp.ClientSSLError:
            raise BackendError(f"A secure (TLS) connection to {self.label} failed; "
                               "check that the server speaks https.") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else _reason(exc)
            raise ServerUnreachable(f"Cannot reach the ComfyUI server at {self.label} ({reason}).") from None

    async def _json(self, response, quiet: bool = False):
        data = await self._bytes(response, MAX_JSON_BYTES)
        try:
            return json.loads(data)
        except ValueError:
            if quiet:
                return None
            raise BackendError(f"The server at {self.label} does not answer like ComfyUI (not JSON).") from None

    async def _bytes(self, response, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise BackendError(f"The server at {self.label} sent more than {limit // 2**20} MB.")
            chunks.append(chunk)
        return b"".join(chunks)

    # --- the progress socket --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep the websocket open, hand each message to its prompt's watcher, reconnect after a drop."""
        import aiohttp

        delay = self.timeouts.reconnect
        url = f"{self.address.websocket}/ws"
        while True:
            try:
                async with self._session.ws_connect(url, params={"clientId": self.client_id}, heartbeat=30,
                                                    max_msg_size=64 * 2**20,
                                                    ssl=self._ssl if self._ssl is not None else True) as ws:
                    self.socket_open = True
                    delay = self.timeouts.reconnect
                    self._tell_all(("reconnected", None))
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._dispatch_text(message.data)
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            self._dispatch_binary(message.data)
                        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001, S110 - any failure of the socket means: poll over HTTP, reconnect later
                pass
            if self.socket_open:
                self.socket_open = False
                self._tell_all(("disconnected", None))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)

    def _dispatch_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return
        kind, data = message.get("type"), message["data"]
        prompt_id = data.get("prompt_id")
        if kind in ("execution_start", "executing") and isinstance(prompt_id, str):
            self._executing = prompt_id if data.get("node", True) is not None else None
        if isinstance(prompt_id, str):
            self._deliver(prompt_id, ("message", (kind, data)))

    def _dispatch_binary(self, frame: bytes) -> None:
        preview = parse_preview(bytes(frame))
        if preview is None:
            return
        prompt_id = preview.prompt_id or self._executing
        if prompt_id is not None:
            self._deliver(prompt_id, ("preview", preview.pixels))

    def _deliver(self, prompt_id: str, event) -> None:
        watcher = self._watchers.get(prompt_id)
        if watcher is not None:
            watcher.put_nowait(event)
        else:
            self._orphans[prompt_id].append(event)
            while len(self._orphans) > ORPHANS_KEPT:
                self._orphans.pop(next(iter(self._orphans)))

    def _tell_all(self, event) -> None:
        for watcher in self._watchers.values():
            watcher.put_nowait(event)

    def _watch(self, prompt_id: str) -> asyncio.Queue:
        watcher = self._watchers.setdefault(prompt_id, asyncio.Queue())
        for event in self._orphans.pop(prompt_id, ()):
            watcher.put_nowait(event)
        return watcher

    # --- queuing in the order jobs were chosen for this server ------------------------------------------------

    def take_ticket(self) -> int:
        """A place in line for queuing a prompt here: prompts are queued in ticket order (see wait_turn)."""
        ticket = self._tickets
        self._tickets += 1
        self.assigned += 1
        return ticket

    async def wait_turn(self, ticket: int) -> None:
        """Return when every earlier ticket has queued its prompt or given up."""
        if self._turn_changed is None:
            self._turn_changed = asyncio.Condition()
        async with self._turn_changed:
            await self._turn_changed.wait_for(lambda: self._turn >= ticket)

    async def end_ticket(self, ticket: int) -> None:
        """The ticket's prompt is queued, or never will be: the next ticket's turn may come."""
        self.assigned -= 1
        self._ended.add(ticket)
        while self._turn in self._ended:
            self._ended.remove(self._turn)
            self._turn += 1
        if self._turn_changed is None:
            self._turn_changed = asyncio.Condition()
        async with self._turn_changed:
            self._turn_changed.notify_all()

    # --- routes -----------------------------------------------------------------------------------------------

    async def system_stats(self) -> dict:
        """GET /system_stats."""
        stats = await self._request("GET", "/system_stats")
        if not isinstance(stats, dict):
            raise BackendError(f"The server at {self.label} does not answer like ComfyUI (/system_stats).")
        return stats

    async def info(self, refresh: bool = False) -> ServerInfo:
        """What the server offers (GET /object_info), remembered until `refresh`."""
        if self._info is None or refresh:
            self._info = ServerInfo.parse(await self._request("GET", "/object_info"), self.label)
        return self._info

    async def queue_length(self) -> int:
        """Prompts running and waiting on the server (GET /queue), everyone's."""
        running, pending = queued_prompt_ids(await self._request("GET", "/queue"))
        return len(running) + len(pending)

    async def report(self) -> ServerReport:
        """Everything the Test button shows: device, version, checkpoints, samplers; whether the socket opens."""
        stats = await self.system_stats()
        info = await self.info(refresh=True)
        for _ in range(int(self.timeouts.connect / 0.05)):
            if self.socket_open:
                break
            await asyncio.sleep(0.05)
        system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
        return ServerReport(self.label, describe_device(stats), clean_text(system.get("comfyui_version") or "", 40),
                            info.checkpoints, info.our_samplers(), info.modes(), self.socket_open)

    async def upload(self, png: bytes, name: str) -> str:
        """POST /upload/image: the name LoadImage / LoadImageMask take for the uploaded PNG."""
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("image", png, filename=name, content_type="image/png")
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        answer = await self._request("POST", "/upload/image", form=form)
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise BackendError(f"The ComfyUI server at {self.label} did not accept the region's image.")
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{answer['name']}" if subfolder else answer["name"]

    async def cancel(self, prompt_id: str) -> None:
        """Take a prompt off the queue, or interrupt it if it is the one running (never another client's)."""
        try:
            running, pending = queued_prompt_ids(await self._request("GET", "/queue"))
            if prompt_id in pending:
                await self._request("POST", "/queue", body={"delete": [prompt_id]}, read="none")
            if prompt_id in running:
                await self._request("POST", "/interrupt", body={"prompt_id": prompt_id}, read="none")
        except BackendError:
            pass  # the server is gone or refuses: nothing of ours runs there any more that we could stop

    # --- one prompt, start to finish ------------------------------------------------------------------------

    async def generate(self, graph: dict, on_progress: Callable[[Progress], None]) -> list[bytes]:
        """Queue `graph`, follow it to its end and return its output images (encoded); cancelling the task cancels
        the prompt."""
        return await self.finish(await self.queue(graph), on_progress)

    async def queue(self, graph: dict) -> str:
        """POST /prompt with our client id: the prompt's id, its messages from now on kept for finish()."""
        await self._client()
        wanted = uuid.uuid4().hex
        self._watch(wanted)
        try:
            answer = await self._request("POST", "/prompt", body={"prompt": graph, "client_id": self.client_id,
                                                                  "prompt_id": wanted})
        except BaseException:
            self._watchers.pop(wanted, None)
            raise
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(prompt_id, str):
            self._watchers.pop(wanted, None)
            raise BackendError(f"The ComfyUI server at {self.label} did not queue the job.")
        if prompt_id != wanted:  # servers before 0.3.45 choose the id themselves
            self._watchers[prompt_id] = self._watchers.pop(wanted)
            self._watch(prompt_id)
        return prompt_id

    async def finish(self, prompt_id: str, on_progress: Callable[[Progress], None]) -> list[bytes]:
        """Follow a queued prompt to its end and return its output images as the server encoded them (decode them
        with decode_result, off the loop); cancelling the task cancels the prompt."""
        finally_cancel = True
        try:
            await self._follow(prompt_id, on_progress)
            finally_cancel = False
            return await self._results(prompt_id)
        except JobLost:
            finally_cancel = False
            raise
        finally:
            self._watchers.pop(prompt_id, None)
            if finally_cancel:
                # cancelled, or failed while the prompt may still be queued: do not leave it to run for nobody
                asyncio.get_running_loop().create_task(self.cancel(prompt_id))

    async def _follow(self, prompt_id: str, on_progress: Callable[[Progress], None]) -> None:
        """Wait for the prompt to finish, passing on progress and previews; raises on failure, loss, timeout."""
        loop = asyncio.get_running_loop()
        watcher = self._watchers[prompt_id]
        value, total = 0, 0
        last_news = loop.time()
        unreachable_since: float | None = None
        while True:
            kind, payload = await _next(watcher, self.timeouts.poll)
            now = loop.time()
            if kind == "message":
                message, data = payload
                last_news = now
                if message == "progress" and isinstance(data.get("value"), int) and isinstance(data.get("max"), int):
                    value, total = data["value"], data["max"]
                    on_progress(Progress("denoising", value, total))
                elif message == "execution_start":
                    on_progress(Progress("starting", 0, max(total, 1), message=f"running on {self.label}"))
                elif message == "execution_error":
                    raise BackendError(f"The ComfyUI server at {self.label} failed: {execution_error_text(data)}.")
                elif message == "execution_interrupted":
                    raise BackendError(f"The job was interrupted on the ComfyUI server at {self.label}.",
                                       retryable=True)
                elif message == "executing" and data.get("node", "") is None:
                    return  # the prompt is done and its history written (main.py's order)
                continue
            if kind == "preview":
                last_news = now
                on_progress(Progress("denoising", value, max(total, 1), preview=payload))
                continue
            if kind == "disconnected":
                continue
            # quiet for a while, or the socket is back: ask the server where the prompt stands
            try:
                state = await self._state(prompt_id)
            except ServerUnreachable:
                unreachable_since = unreachable_since if unreachable_since is not None else now
                if now - unreachable_since >= self.timeouts.dead:
                    raise ServerUnreachable(f"The ComfyUI server at {self.label} stopped answering "
                                            f"for {self.timeouts.dead:g} s during the job.") from None
                continue
            unreachable_since = None
            if state == "done":
                return
            if state == "lost":
                raise JobLost(f"The ComfyUI server at {self.label} dropped the job (it is neither queued nor "
                              "in its history; was it restarted?).")
            if state == "queued":
                last_news = now  # waiting behind other jobs is not a stall
            elif now - last_news >= self.timeouts.idle:
                raise BackendError(f"The job on the ComfyUI server at {self.label} made no progress for "
                                   f"{self.timeouts.idle:g} s; it was given up.", retryable=True)

    async def _state(self, prompt_id: str) -> str:
        """"done", "running", "queued" or "lost", from /history and /queue (history first: no race with its end)."""
        if read_history(await self._request("GET", f"/history/{prompt_id}"), prompt_id, OUTPUT_NODE) is not None:
            return "done"
        running, pending = queued_prompt_ids(await self._request("GET", "/queue"))
        if prompt_id in running:
            return "running"
        if prompt_id in pending:
            return "queued"
        if read_history(await self._request("GET", f"/history/{prompt_id}"), prompt_id, OUTPUT_NODE) is not None:
            return "done"
        return "lost"

    async def _results(self, prompt_id: str) -> list[bytes]:
        """The output images of a finished prompt, from /history and /view, as the server encoded them."""
        outcome = None
        for _ in range(20):  # a socket message can beat the history write by a moment on some servers
            outcome = read_history(await self._request("GET", f"/history/{prompt_id}"), prompt_id, OUTPUT_NODE)
            if outcome is not None and (outcome.completed or outcome.images):
                break
            await asyncio.sleep(0.05)
        if outcome is None:
            raise JobLost(f"The ComfyUI server at {self.label} finished the job but kept no record of it.")
        if outcome.error is not None:
            raise BackendError(f"The ComfyUI server at {self.label} failed: {outcome.error}.")
        if not outcome.images:
            raise BackendError(f"The ComfyUI server at {self.label} finished the job without an image.")
        images = []
        for filename, subfolder, folder in outcome.images:
            images.append(await self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder,
                                                                       "type": folder}, read="bytes"))
        return images


async def _next(watcher: asyncio.Queue, timeout: float):
    """The watcher's next event, or ("poll", None) after `timeout` seconds of silence.

    Not asyncio.wait_for: before Python 3.12 it swallows a cancel that arrives as the item does, and a
    cancelled job would then run on.
    """
    getter = asyncio.ensure_future(watcher.get())
    try:
        done, _ = await asyncio.wait({getter}, timeout=timeout)
    except asyncio.CancelledError:
        getter.cancel()
        raise
    if getter in done:
        return getter.result()
    getter.cancel()
    return "poll", None


def decode_result(data: bytes) -> np.ndarray:
    """A result image as (h, w, 3) uint8, refused before decoding when larger than MAX_RESULT_SIDE a side."""
    return decode_image(data, MAX_RESULT_SIDE)


def _reason(exc: BaseException) -> str:
    """A connection failure in a few words, without the URL or headers aiohttp puts in its messages."""
    import aiohttp

    dns_error = getattr(aiohttp, "ClientConnectorDNSError", ())  # aiohttp 3.10 and later
    if isinstance(exc, dns_error) or isinstance(getattr(exc, "os_error", None), socket.gaierror):
        return "unknown host name"
    if isinstance(exc, aiohttp.ClientConnectorError):
        number = getattr(getattr(exc, "os_error", None), "errno", None)
        return os.strerror(number).lower() if isinstance(number, int) and number > 0 else "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return clean_text(type(exc).__name__, 40)
