"""A private asyncio event loop on a daemon thread, so synchronous engine code can drive async network clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop of its own on a daemon thread, started on first use: no Qt, no loop in the caller needed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started now if it was not)."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def spawn(self, coroutine: Awaitable[T]) -> concurrent.futures.Future:
        """Run a coroutine on the loop; returns a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result here (never call this from the loop itself)."""
        future = self.spawn(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and its thread; pending tasks are cancelled first, so their cleanup runs."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        if loop.is_running() and thread is not threading.current_thread():
            with contextlib.suppress(Exception):  # stopping goes on whatever the tasks did
                asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        if not loop.is_running():
            loop.close()


async def _cancel_all() -> None:
    """Cancel every other task on the loop and let each run its cleanup (a second at most)."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1)
