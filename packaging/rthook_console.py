"""PyInstaller runtime hook (Windows): let the windowed sd-studio-gui.exe print when started from a console.

A windowed Windows program has no stdout/stderr (sys.stdout is None), so `sd-studio-gui info x.png` typed in
a terminal would print nothing. When the parent process has a console, attach to it and write there.
"""

import sys


def _attach_parent_console() -> None:
    if sys.platform != "win32" or sys.stdout is not None:
        return
    import ctypes

    ATTACH_PARENT_PROCESS = -1
    if not ctypes.windll.kernel32.AttachConsole(ATTACH_PARENT_PROCESS):
        return  # started from Explorer or a shortcut: no console, stay silent
    sys.stdout = open("CONOUT$", "w", encoding="utf-8", errors="replace")
    sys.stderr = sys.stdout


try:
    _attach_parent_console()
except Exception:  # noqa: BLE001 - never keep the app from starting over console plumbing
    pass
