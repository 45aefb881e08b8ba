"""EngineThread: runs generations on a QThread and turns the engine's callbacks into Qt signals."""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot


class EngineWorker(QObject):
    """Lives on the engine thread; owns the one ModelCache so that a model loads once per session."""

    progress = Signal(int, object)  # job id, engine.request.Progress
    finished = Signal(int, object)  # job id, engine.request.GenerationResult
    failed = Signal(int, object)  # job id, the exception (sd_studio.errors.Cancelled when cancelled)
    loaded = Signal(str, str)  # the device a job's model runs on ("cuda:0 (NVIDIA H200), float16"), its name

    def __init__(self) -> None:
        super().__init__()
        self.models = None
        self._settled = False
        self.cancel_flag = threading.Event()

    @Slot(int, object)
    def run(self, job: int, request) -> None:
        """Generate for request (a GenerationRequest, or a function that builds one here), reporting
        progress; emits finished or failed, never raises."""
        try:
            if callable(request):
                request = request()
            from sd_studio.engine.generate import generate
            from sd_studio.engine.models.loading import ModelCache

            if self.models is None:
                self.models = _noting_cache(ModelCache, lambda device, name: self.loaded.emit(device, name))()
            _note_job(request)
            if request.engine != "classical":
                self.warm_up()  # a Fill needs neither torch nor diffusers
            result = generate(
                request,
                progress=lambda p: self.progress.emit(job, p),
                cancel=self.cancel_flag.is_set,
                models=self.models,
            )
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the window as a signal
            self.failed.emit(job, exc)
        else:
            self.finished.emit(job, result)


    @Slot()
    def warm_up(self) -> None:
        """Import torch and diffusers and set the thread counts, once; later calls return at once."""
        if self._settled:
            return
        _settle_imports()
        self._settled = True
        from sd_studio.engine.cpu.processor import configure_threads

        # Here, on the thread that runs torch (OpenMP thread counts are per thread): one core for the window.
        configure_threads(for_editor=True)


def _note_job(request) -> None:
    """Tell the incident log what a job starting now runs on; the model's load refines it."""
    from sd_studio.incidents import set_context

    if request.engine == "classical" or (request.engine == "auto" and not request.model):
        set_context(device="cpu (classical fill)", model="classical")
    else:
        set_context(device=f"{request.device} (requested; the model is not loaded yet)", model=request.model)


def describe_device(device: str, dtype=None) -> str:
    """A device as a bug report wants it: "cuda:0 (NVIDIA H200), float16", "cpu, float32"."""
    text = str(device)
    if text.startswith("cuda"):
        try:
            import torch

            index = torch.device(text).index
            index = torch.cuda.current_device() if index is None else index
            text = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        except Exception:  # noqa: BLE001 - the report must not fail for want of a GPU name
            pass
    if dtype is not None:
        text += f", {str(dtype).removeprefix('torch.')}"
    return text


def _noting_cache(model_cache, on_loaded=None):
    """A ModelCache subclass whose get() tells the incident log (and on_loaded(device, model name), if
    given) the device and model it returned."""

    class NotingModelCache(model_cache):
        """The engine thread's model cache; every model it hands out is named in the incident log."""

        def get(self, spec, device="auto", precision="auto", progress=None):
            """ModelCache.get, then incidents.set_context(device=..., model=...) and on_loaded."""
            from sd_studio.incidents import set_context

            model = super().get(spec, device, precision, progress)
            described = describe_device(model.device, model.dtype)
            set_context(device=described, model=f"{model.name} ({spec})")
            if on_loaded is not None:
                on_loaded(described, model.name)
            return model

    return NotingModelCache


def _settle_imports() -> None:
    """Import torch and diffusers' pipelines with the garbage collector paused, then freeze what exists.

    Each full collection holds the GIL, and so freezes the window, for as long as it takes to scan
    every object; during these imports the heap grows by hundreds of thousands of objects and the
    collector would run again and again (stalls of ~0.5 s). The modules stay loaded for the whole
    session, so they are moved out of the collector's way for good.
    """
    import gc

    gc.freeze()
    gc.disable()
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline  # noqa: F401
    finally:
        gc.enable()
        gc.freeze()


class EngineThread(QObject):
    """Starts generations one at a time on a background thread; the window only receives signals.

    `submit(request)` returns a job id; the signals carry it so a late answer from an old job can
    be recognised. `cancel()` sets a thread-safe flag that the engine checks between steps.
    """

    progress = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, object)
    busy_changed = Signal(bool)
    loaded = Signal(str, str)  # EngineWorker.loaded: the device and model a job really runs on
    _start = Signal(int, object)
    _warm_up = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("sd-studio engine")
        self.worker = EngineWorker()
        self.worker.moveToThread(self._thread)
        self._start.connect(self.worker.run)
        self._warm_up.connect(self.worker.warm_up)
        self.worker.progress.connect(self.progress)
        self.worker.loaded.connect(self.loaded)
        self.worker.finished.connect(self._done)
        self.worker.failed.connect(self._failed)
        self._job = 0
        self._running: int | None = None
        # The engine's Python code holds the GIL between torch calls; a short switch interval hands
        # it back to the window's thread quickly, so painting never waits long for it.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._running is not None

    def submit(self, request) -> int:
        """Start a generation of a GenerationRequest, or of what a function called on the engine thread
        returns (ui/generation.prepare_request); returns its job id. Refuses while another job runs."""
        if self.busy:
            raise RuntimeError("a generation is already running")
        self._job += 1
        self._running = self._job
        self.worker.cancel_flag.clear()
        self.busy_changed.emit(True)
        self._start.emit(self._job, request)
        return self._job

    def warm_up(self) -> None:
        """Import torch and diffusers on the engine thread now, ahead of the first generation (which would
        otherwise wait for them); a job submitted meanwhile starts when they are in."""
        self._warm_up.emit()

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self.busy:
            self.worker.cancel_flag.set()

    def _done(self, job: int, result) -> None:
        self._running = None
        self.busy_changed.emit(False)
        self.finished.emit(job, result)

    def _failed(self, job: int, exc) -> None:
        self._running = None
        self.busy_changed.emit(False)
        self.failed.emit(job, exc)

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel any job and stop the thread."""
        self.cancel()
        self._thread.quit()
        self._thread.wait(wait_ms)
