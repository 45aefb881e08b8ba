"""The first minute once more, as an X11 user lives it: `sd-studio scan.png` on an Xvfb display, keys and the
mouse from xdotool (the X server delivers them where the focus really is), the photo found on a screenshot.

Skipped where Xvfb, xdotool or ImageMagick's `import` is missing. The default model is the tiny test model
(set in the settings file before start), so Ctrl+Enter inpaints with diffusion on the CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(p) for p in ("Xvfb", "xdotool", "import")),
                       reason="needs Xvfb, xdotool and ImageMagick's import"),
]

MARK = (255, 0, 255)  # a magenta square in the photo: where the stroke goes, found on the screen


class _Display:
    """An Xvfb server (and openbox when installed, as a window manager gives the focus back after dialogs)."""

    def __init__(self, tmp: Path) -> None:
        read, write = os.pipe()
        self.procs = [subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1366x768x24",
                                        "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)]
        os.close(write)
        with os.fdopen(read) as fd:
            self.name = f":{fd.readline().strip()}"
        self.env = dict(os.environ, DISPLAY=self.name, HOME=str(tmp), QT_QPA_PLATFORM="xcb",
                        XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
                        XDG_CACHE_HOME=str(tmp / "cache"), HF_HUB_OFFLINE="1")
        self.env.pop("QT_QPA_PLATFORMTHEME", None)
        if shutil.which("openbox"):
            self.procs.append(subprocess.Popen(["openbox"], env=self.env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))

    def xdotool(self, *args: str) -> str:
        """Run xdotool on this display; its output."""
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=60).stdout

    def screenshot(self, path: Path) -> np.ndarray:
        """The whole screen as (h, w, 3) pixels."""
        from PIL import Image

        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=60)
        return np.asarray(Image.open(path).convert("RGB"))

    def close(self) -> None:
        """Stop what was started here, newest first."""
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(condition, what: str, timeout_s: float = 120):
    """condition()'s first true value, polled; fails the test naming what did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout_s} s")


def test_the_first_minute_on_x11(tmp_path, tiny_sd_dir):
    from sd_studio.document.io import open_document, save_image

    y, x = np.mgrid[0:240, 0:320]
    photo_pixels = np.stack([x % 256, y, (x + y) % 128, np.full_like(x, 255)], axis=-1).astype(np.uint8)
    photo_pixels[100:140, 120:200, :3] = MARK
    photo = tmp_path / "scan.png"
    save_image(str(photo), photo_pixels)
    settings = tmp_path / "home" / "config" / "sd-studio" / "sd-studio.conf"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"[models]\ndefault={tiny_sd_dir}\n\n[engine]\ndevice=cpu\n")
    project = tmp_path / "restored.ora"

    display = _Display(tmp_path / "home")
    root = Path(__file__).resolve().parents[2]
    env = dict(display.env, PYTHONPATH=str(root))
    app = subprocess.Popen([sys.executable, "-m", "sd_studio", str(photo)], env=env, cwd=root,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    display.procs.append(app)
    try:
        window = _wait(lambda: display.xdotool("search", "--onlyvisible", "--name", "scan.png — SD Studio").split(),
                       "the window opening on scan.png")[0]
        display.xdotool("windowfocus", "--sync", window)
        screen = _wait(lambda: _find(display.screenshot(tmp_path / "screen.png"), MARK), "the photo showing")
        (top, left), (bottom, right) = screen
        row = (top + bottom) // 2
        display.xdotool("key", "m")  # the mask brush, if the keys are the canvas's
        display.xdotool("mousemove", str(left + 10), str(row), "mousedown", "1")
        for x in range(left + 10, right - 10, 8):
            display.xdotool("mousemove", str(x), str(row))
        display.xdotool("mouseup", "1")
        display.xdotool("key", "ctrl+Return")
        _wait(lambda: display.xdotool("search", "--onlyvisible", "--name", r"scan.png\* — SD Studio").split()
              and _find(display.screenshot(tmp_path / "screen.png"), MARK) is None, "the result covering the mark")
        display.xdotool("key", "ctrl+shift+s")
        _wait(lambda: display.xdotool("search", "--onlyvisible", "--name", "Save As").split(), "the Save As dialog")
        time.sleep(0.5)
        display.xdotool("key", "ctrl+a")
        display.xdotool("type", "--delay", "20", str(project))
        display.xdotool("key", "Return")
        _wait(lambda: display.xdotool("search", "--onlyvisible", "--name", "restored.ora — SD Studio").split(),
              "the project saved")
        display.xdotool("key", "ctrl+q")
        _wait(lambda: app.poll() is not None, "the editor closing without a question (it was saved)", 60)
    finally:
        display.close()
    doc = open_document(project).document
    assert len(doc.layers) == 2
    mask = doc.mask.to_array()
    assert mask[120, 160] == 255 and mask[20, 20] == 0, "the stroke did not mark the mask"
    import cv2

    outside = cv2.dilate((mask > 0).astype(np.uint8), np.ones((41, 41), np.uint8)) == 0
    np.testing.assert_array_equal(doc.composite()[outside], photo_pixels[outside])


def _find(screen: np.ndarray, color) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The bounding box ((top, left), (bottom, right)) of the pixels of exactly color, or None."""
    ys, xs = np.nonzero((screen == np.array(color, np.uint8)).all(axis=2))
    if len(ys) < 100:
        return None
    return (int(ys.min()), int(xs.min())), (int(ys.max()), int(xs.max()))
