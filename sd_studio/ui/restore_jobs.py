"""RestoreJob: runs one restoration (a function of progress and cancel) on a worker thread, with Qt signals.

The window's engine thread runs generations; restorations (find damage, upscale, expand, faces,
colour) are plain engine functions that take `progress` and `cancel` callbacks, so this small
runner gives any of them the same shape: `start()`, `progress(Progress)`, `finished(result)` or
`failed(exception)` (sd_studio.errors.Cancelled after `cancel()`), all delivered on the main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal


class _Worker(QThread):
    """The thread one job runs on; reports through the job's signals (queued to the main thread)."""

    def __init__(self, job: RestoreJob) -> None:
        super().__init__()
        self.job = job

    def run(self) -> None:
        job = self.job
        try:
            result = job.function(job.progress.emit, job.cancel_flag.is_set)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the window as a signal
            job.failed.emit(exc)
        else:
            job.finished.emit(result)


class RestoreJob(QObject):
    """One restoration on a background thread: function(progress, cancel) -> result."""

    progress = Signal(object)  # engine.request.Progress
    finished = Signal(object)  # whatever the function returned (a RestoreResult, a mask, ...)
    failed = Signal(object)  # the exception; sd_studio.errors.Cancelled after cancel()

    def __init__(self, function: Callable, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.function = function
        self.cancel_flag = threading.Event()
        self._thread: _Worker | None = None

    @property
    def running(self) -> bool:
        """True between start() and the finished or failed signal."""
        return self._thread is not None and self._thread.isRunning()

    def start(self) -> None:
        """Run the function on its own thread."""
        self.cancel_flag.clear()
        self._thread = _Worker(self)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the function to stop at its next check (between tiles, steps or faces)."""
        self.cancel_flag.set()

    def wait(self, ms: int = 10000) -> bool:
        """Block until the thread ends (for shutting down); True if it did."""
        return self._thread is None or self._thread.wait(ms)
