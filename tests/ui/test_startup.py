"""Start-up: the window's frame shows first; the document side (canvas, panels, file) follows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sd_studio.incidents import uninstall_exception_hooks


@pytest.fixture
def started(qtbot, settings, photo):
    """The editor as `sd-studio FILE` starts it, torn down without prompts."""
    from sd_studio.app import start_editor

    windows = []

    def start(path):
        win = start_editor(str(path) if path else None, settings=settings)
        windows.append(win)
        return win

    yield start
    for win in windows:
        win.ready.disconnect()
        if win.is_ready:
            win.doc.history.mark_clean()
            win.autosave.finish()
        win.close()
        if win.is_ready:
            win.engine.shutdown()
        win.deleteLater()
    uninstall_exception_hooks()


def test_the_first_frame_shows_before_the_rest_is_built(qtbot, started, photo):
    win = started(photo)
    # the first frame is the window's size, title and background; nothing else is made before it shows
    assert not win.is_ready and win.doc is None and win.session is None
    assert win.windowTitle() == "Untitled — SD Studio"
    assert not win.menuBar().actions() and not win.actions
    built = []
    win.building.connect(lambda: built.append(win.isVisible() and not win.is_ready))
    with qtbot.waitSignal(win.ready, timeout=20000):
        pass
    assert built == [True]  # built after the window was on screen
    assert win.menuBar().actions() and win.actions["generate"].shortcut().toString()
    assert win.is_ready and win.path == str(photo)
    assert (win.doc.size.width, win.doc.size.height) == (96, 80)
    assert win.windowTitle() == "photo.png — SD Studio"
    assert win.docks["Layers"].widget() is win.layers_panel
    assert win.centralWidget() is win.canvas
    assert win.autosave is not None and win.autosave.session is win.session


def test_a_file_that_cannot_be_opened_leaves_a_new_document_and_an_error(qtbot, started, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("sd_studio.ui.session.show_error", lambda parent, exc, action: shown.append(action))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    win = started(bad)
    qtbot.waitUntil(lambda: bool(shown), timeout=20000)
    assert win.path is None and (win.doc.size.width, win.doc.size.height) == (1024, 1024)
    assert shown == [f"open {bad}"]


def test_a_window_built_directly_is_complete_at_once(window):
    assert window.is_ready and window.doc is not None and window.centralWidget() is window.canvas


def test_restored_geometry_is_kept(qtbot, settings):
    from sd_studio.ui.main_window import MainWindow

    first = MainWindow(settings=settings)
    first.move(37, 23)  # a first start centres the window instead
    first.show()
    qtbot.waitExposed(first)
    first.close()
    first.engine.shutdown()
    assert (first.geometry().x(), first.geometry().y()) != (0, 0)
    second = MainWindow(settings=settings)
    try:
        assert not second.first_start
        assert (second.geometry().x(), second.geometry().y()) == (first.geometry().x(), first.geometry().y())
    finally:
        second.engine.shutdown()
        second.deleteLater()
        first.deleteLater()


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["generate", "--help"]])
def test_the_command_line_does_not_import_numpy_torch_or_qt_for_help(argv):
    code = (
        "import sys; from sd_studio.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch', 'diffusers', 'PySide6', 'pyvips', 'cv2'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stderr, out.stderr



def test_a_chosen_model_has_torch_imported_before_the_first_generate(qtbot, started, settings, photo, monkeypatch):
    monkeypatch.setattr("sd_studio.app.WARM_UP_DELAY_MS", 0)
    settings.setValue("models/default", "/models/some-model")  # a model is chosen: warm up at start
    win = started(photo)
    with qtbot.waitSignal(win.ready, timeout=20000):
        pass
    assert win.generate_panel.model_spec() == "/models/some-model"
    qtbot.waitUntil(lambda: win.engine.worker._settled, timeout=120000)
    assert "torch" in sys.modules and "diffusers" in sys.modules


def test_without_a_model_nothing_is_imported_ahead(qtbot, started, photo, monkeypatch):
    calls = []
    monkeypatch.setattr("sd_studio.app.WARM_UP_DELAY_MS", 0)
    monkeypatch.setattr("sd_studio.ui.engine_thread.EngineThread.warm_up", lambda self: calls.append(1))
    win = started(photo)
    with qtbot.waitSignal(win.ready, timeout=20000):
        pass
    qtbot.wait(100)  # the start-up's own check has run
    assert win.generate_panel.model_spec() == "" and calls == []
    win.generate_panel.model.setCurrentText("/models/other")
    win.generate_panel.model_chosen.emit("/models/other")  # as when the user picks or types a model
    assert calls == [1]
