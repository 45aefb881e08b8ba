"""GenerationController: runs the Generate panel's request on the engine thread for the open document."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from sd_studio.document.geometry import Bounds
from sd_studio.errors import Cancelled, SDStudioError
from sd_studio.ui.engine_thread import EngineThread
from sd_studio.ui.generation import apply_result, prepare_request


class GenerationController(QObject):
    """Ties the panel, the canvas and the engine thread together for one window.

    The document is read when a job starts (a copy of the composite and mask) and changed only when
    a result is kept, by one command; a cancelled or failed job changes nothing.
    """

    error = Signal(object)  # an exception to show
    message = Signal(str)  # a status-bar line
    engine_state = Signal(str)  # "device · model" for the status bar
    model_used = Signal(str)  # a model spec that worked, for the recent-models list
    result_applied = Signal()  # a result became layers of the document (one command)

    def __init__(self, window, panel, canvas, engine: EngineThread) -> None:
        super().__init__(window)
        self.window = window
        self.panel = panel
        self.canvas = canvas
        self.engine = engine
        self._job: int | None = None
        self._source = None
        self._mode = "inpaint"
        self._model: str | None = None
        self._target_doc = None
        self._region: Bounds | None = None
        self._pending = None  # a result with several variants waiting for a choice
        self._region_timer = QTimer(self, singleShot=True, interval=120, timeout=self.update_region)
        engine.progress.connect(self._on_progress)
        engine.finished.connect(self._on_finished)
        engine.failed.connect(self._on_failed)
        engine.busy_changed.connect(panel.set_busy)
        if hasattr(engine, "loaded"):  # the device the model really runs on, once it is loaded
            engine.loaded.connect(lambda device, name: self.engine_state.emit(f"{device} · {name}"))
        panel.generate_requested.connect(self.generate)
        panel.cancel_requested.connect(self.cancel)
        panel.variant_changed.connect(self._show_variant)
        panel.keep_requested.connect(self.keep)
        panel.discard_requested.connect(self.discard)
        for signal in (panel.mode.currentIndexChanged, panel.padding.valueChanged, panel.whole_image.toggled):
            signal.connect(self.schedule_region)

    @property
    def doc(self):
        """The window's current document."""
        return self.canvas.document

    @property
    def busy(self) -> bool:
        """True while a generation runs."""
        return self._job is not None

    def document_changed(self) -> None:
        """The window opened another document: forget pending results and re-plan the outline."""
        self.discard()
        if self.doc is not None:
            self.doc.events.mask_changed.connect(self.schedule_region)
        self.schedule_region()

    # -- the planned region ------------------------------------------------------------------
    def schedule_region(self, *_args) -> None:
        """Re-plan the outlined region soon (after the mask or the settings settle)."""
        self._region_timer.start()

    def planned_region(self) -> Bounds | None:
        """Where the next generation would work, or None when it could not run (e.g. no mask)."""
        from sd_studio.engine.region import plan_region

        doc = self.doc
        if doc is None:
            return None
        s = self.panel.settings()
        mask = self.canvas.mask_array()
        has_mask = mask is not None and not doc.mask.is_empty
        if s["mode"] in ("inpaint", "fill") and not has_mask:
            return None
        try:
            plan = plan_region(doc.size, mask if has_mask else None, padding=max(s["padding"], s["feather"] + 1),
                               resolution=s["resolution"] or 512, whole_image=s["whole_image"] and s["mode"] != "fill")
        except SDStudioError:
            return None
        return plan.bounds

    def update_region(self) -> None:
        """Outline the planned region on the canvas."""
        if not self.busy:
            self.canvas.set_region(self.planned_region())

    # -- running -----------------------------------------------------------------------------
    def generate(self) -> None:
        """Start a generation with the panel's settings (errors are shown, the document is untouched)."""
        if self.busy or self.doc is None:
            return
        self.discard()
        settings = self.panel.settings()
        try:
            request = prepare_request(self.doc, settings)  # built on the engine thread
        except SDStudioError as exc:
            self.error.emit(exc)
            return
        diffusion = settings["mode"] != "fill"
        self._mode = settings["mode"]
        self._model = settings.get("model") if diffusion else None
        self._source = self.doc.active
        self._target_doc = self.doc
        self._region = self.planned_region()
        self.canvas.set_region(self._region)
        if diffusion:
            self.engine_state.emit(f"{settings.get('device', 'auto')} · {settings.get('model')}")
        self._job = self.engine.submit(request)
        self.message.emit("Generating...")

    def cancel(self) -> None:
        """Stop the running generation at its next step."""
        if self.busy:
            self.engine.cancel()
            self.panel.set_progress("cancelling", 0, 0)

    def _on_progress(self, job: int, p) -> None:
        if job != self._job:
            return
        self.panel.set_progress(p.phase, p.step, p.total, p.message)
        if p.preview is not None and self._region is not None:
            self.canvas.set_preview(p.preview, self._region)

    def _finish(self) -> None:
        self._job = None
        self.canvas.set_preview(None)
        self.update_region()

    def _on_failed(self, job: int, exc) -> None:
        if job != self._job:
            return
        self._finish()
        if isinstance(exc, Cancelled):
            self.panel.set_done("Cancelled")
            self.message.emit("Generation cancelled; nothing was changed.")
        else:
            self.panel.set_done("Failed")
            self.error.emit(exc)

    def _on_finished(self, job: int, result) -> None:
        if job != self._job:
            return
        self._finish()
        self.panel.set_done("Done")
        if self._model:
            self.model_used.emit(self._model)
        if result.seeds:
            self.panel.show_seed(result.seeds[0])
        if self.doc is not self._target_doc:
            self.message.emit("The generation finished for a document that is no longer open; it was dropped.")
            return
        if len(result.images) == 1:
            self.doc.execute(apply_result(self.doc, result, [0], self._source, self._mode))
            self.result_applied.emit()
            seed = f" (seed {result.seeds[0]})" if result.seeds else ""
            self.message.emit(f"The result is a new layer{seed}; undo removes it.")
        else:
            self._pending = result
            self.panel.offer_variants(len(result.images))
            seeds = f" (seeds {result.seeds[0]}–{result.seeds[-1]})" if result.seeds else ""
            self.message.emit(f"{len(result.images)} variants{seeds}: flip through them, then keep one or all.")

    # -- variants ----------------------------------------------------------------------------
    def _show_variant(self, i: int) -> None:
        if self._pending is not None:
            self.canvas.set_preview(self._pending.images[i], self._pending.region)

    def keep(self, everything: bool) -> None:
        """Add the variant shown (or every variant) as layers, in one command."""
        result, self._pending = self._pending, None
        if result is None:
            return
        self.canvas.set_preview(None)
        self.panel.offer_variants(0)
        chosen = list(range(len(result.images))) if everything else [self.panel.current_variant]
        self.doc.execute(apply_result(self.doc, result, chosen, self._source, self._mode))
        self.result_applied.emit()

    def discard(self) -> None:
        """Drop the variants waiting for a choice."""
        if self._pending is not None:
            self._pending = None
            self.canvas.set_preview(None)
            self.panel.offer_variants(0)
