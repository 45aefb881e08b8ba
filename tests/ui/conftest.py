"""Editor test set-up: a main window with its own settings file, and the engine's tiny models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

_spec = importlib.util.spec_from_file_location("_engine_models_conftest", Path(__file__).parents[1] / "engine" / "conftest.py")
_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_engine)
save_tiny_model = _engine.save_tiny_model


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """The engine tests' tiny SD1-style diffusers folder (4-channel UNet), built once per session."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def settings(tmp_path) -> QSettings:
    """A QSettings in a file of its own, so tests never share or touch the user's settings."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """A shown main window, closed afterwards without the unsaved-changes prompt."""
    from sd_studio.ui.main_window import MainWindow

    win = MainWindow(settings=settings)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.doc.history.mark_clean()  # no unsaved-changes prompt while closing
    win.close()
    win.engine.shutdown()
    win.deleteLater()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 96 x 80 PNG with a gradient, written with the project's own image writer."""
    from sd_studio.document.io import save_image

    y, x = np.mgrid[0:80, 0:96]
    rgba = np.stack([x * 2, y * 3, np.full_like(x, 120), np.full_like(x, 255)], axis=-1).astype(np.uint8)
    path = tmp_path / "photo.png"
    save_image(str(path), rgba)
    return path


@pytest.fixture
def editor(qtbot, settings, photo):
    """The editor as `sd-studio photo.png` starts it (sd_studio.app.start_editor), ready and the active window;
    closed afterwards without prompts."""
    from sd_studio.app import start_editor
    from sd_studio.incidents import uninstall_exception_hooks

    win = start_editor(str(photo), settings=settings)
    qtbot.waitUntil(lambda: win.is_ready and win.autosave is not None, timeout=20000)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    yield win
    win.doc.history.mark_clean()
    win.autosave.finish()
    win.close()
    win.engine.shutdown()
    win.deleteLater()
    uninstall_exception_hooks()
