"""SmartMaskService: smart-mask requests answered on a thread of their own, the newest one first, as Qt signals."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from sd_studio.engine.segment.prompt import MaskPrompt

KINDS = ("prompt", "subject", "background")


@dataclass(frozen=True)
class SmartMaskJob:
    """One request: a prompt (or the subject, or the background) on the picture known by `key`.

    `image` carries the picture (a copy, RGB or RGBA uint8) when the worker does not hold that key's yet.
    """

    kind: str
    key: Hashable
    model: str | None
    prompt: MaskPrompt | None = None
    image: np.ndarray | None = None


class SmartMaskWorker(QObject):
    """Lives on the service's thread; owns the Segmenter (so a model loads once, each picture is analysed once)."""

    finished = Signal(int, object)  # job id, engine.segment.Selection
    failed = Signal(int, object)  # job id, the exception (sd_studio.errors.Cancelled when cancelled)
    progress = Signal(int, object)  # job id, engine.request.Progress

    def __init__(self) -> None:
        super().__init__()
        self.cancel_flag = threading.Event()
        self.segmenter = None
        self._image: np.ndarray | None = None
        self._key: Hashable = None
        self._threads_set = False

    @Slot(int, object)
    def run(self, job_id: int, job: SmartMaskJob) -> None:
        """Answer one job; emits finished or failed, never raises."""
        try:
            from sd_studio.engine.segment.segmenter import Segmenter

            if job.image is not None:
                self._image, self._key = job.image, job.key
            if self._image is None or self._key != job.key:
                raise RuntimeError("the smart-mask worker was not given the picture of this request")
            if self.segmenter is None or self.segmenter.model != job.model:
                self.segmenter = Segmenter(job.model)
            if job.model and not self._threads_set:
                from sd_studio.engine.cpu.processor import configure_threads

                # Here, on the thread that runs the model (OpenMP counts are per thread): one core for the window.
                configure_threads(for_editor=True)
                self._threads_set = True
            report = lambda p: self.progress.emit(job_id, p)
            cancel = self.cancel_flag.is_set
            if job.kind == "prompt":
                result = self.segmenter.select(self._image, job.prompt, job.key, report, cancel)
            elif job.kind == "subject":
                result = self.segmenter.select_subject(self._image, job.key, report, cancel)
            else:
                result = self.segmenter.select_background(self._image, job.key, report, cancel)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the window as a signal
            self.failed.emit(job_id, exc)
        else:
            self.finished.emit(job_id, result)


class SmartMaskService(QObject):
    """Runs smart-mask jobs one at a time off the main thread; while one runs, only the newest request waits.

    Clicks come faster than a model answers: a waiting request replaced by a newer one is never run (its id
    gets no answer), so the mask follows the user's latest click instead of replaying every one of them.
    """

    finished = Signal(int, object)
    failed = Signal(int, object)
    progress = Signal(int, object)
    busy_changed = Signal(bool)
    _start = Signal(int, object)

    def __init__(self, model: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model or None
        self._thread = QThread()
        self._thread.setObjectName("sd-studio smart masks")
        self.worker = SmartMaskWorker()
        self.worker.moveToThread(self._thread)
        self._start.connect(self.worker.run)
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.worker.progress.connect(self.progress)
        self._job = 0
        self._running: int | None = None
        self._running_job: SmartMaskJob | None = None
        self._pending: tuple[int, SmartMaskJob] | None = None
        self._image_key: Hashable = object()  # the picture last handed to the worker (sent or waiting)
        self._analysed: set[tuple[str | None, Hashable]] = set()
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)  # a thread still running at exit would abort the process

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._running is not None

    def set_model(self, model: str | None) -> None:
        """Use this Segment Anything model (a folder, file or hub id; None: GrabCut) from the next job on."""
        self.model = model or None

    def needs_analysis(self, key: Hashable) -> bool:
        """True when a request on the picture `key` will first run the model's image encoder (seconds)."""
        return self.model is not None and (self.model, key) not in self._analysed

    def submit(self, kind: str, key: Hashable, picture: Callable[[], np.ndarray],
               prompt: MaskPrompt | None = None) -> int:
        """Queue a request on the picture `key`; `picture()` (called now, only if the worker lacks that picture)
        returns a copy of it. Returns the job id that finished/failed will carry."""
        if kind not in KINDS:
            raise ValueError(f"unknown smart-mask request {kind!r}")
        image = None
        if key != self._image_key:
            image = picture()
            self._image_key = key
        self._job += 1
        job = SmartMaskJob(kind, key, self.model, prompt, image)
        if self._running is None:
            self._dispatch(self._job, job)
        else:
            if self._pending is not None and job.image is None and self._pending[1].image is not None:
                job = replace(job, image=self._pending[1].image)  # the replaced request carried the picture
            self._pending = (self._job, job)
        return self._job

    def cancel(self) -> None:
        """Stop the running job at its next step and drop the waiting one."""
        if self._pending is not None and self._pending[1].image is not None:
            self._image_key = object()  # that picture never reached the worker
        self._pending = None
        if self._running is not None:
            self.worker.cancel_flag.set()

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel and stop the thread."""
        self.cancel()
        self._thread.quit()
        self._thread.wait(wait_ms)

    def _dispatch(self, job_id: int, job: SmartMaskJob) -> None:
        was_busy = self.busy
        self._running = job_id
        self._running_job = job
        self.worker.cancel_flag.clear()
        if not was_busy:
            self.busy_changed.emit(True)
        self._start.emit(job_id, job)

    def _next(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._dispatch(*pending)
        else:
            self._running = None
            self.busy_changed.emit(False)

    def _finished(self, job_id: int, result) -> None:
        job = self._running_job
        self._analysed.add((job.model, job.key))
        self._next()
        self.finished.emit(job_id, result)

    def _failed(self, job_id: int, exc) -> None:
        self._next()
        self.failed.emit(job_id, exc)
