"""Icons: qtawesome's icon fonts drawn in the palette's colours, without importing qtawesome itself.

Importing qtawesome pulls in qtpy and costs about a quarter of a second at start-up; the fonts and
charmaps it ships are all the editor needs, so this module reads them directly. Names are
qtawesome's ("mdi6.brush").
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap

_FONTS = {"mdi6": "materialdesignicons6-webfont"}


def _fonts_dir() -> Path:
    spec = find_spec("qtawesome")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("qtawesome is not installed")
    return Path(spec.origin).parent / "fonts"


@lru_cache(maxsize=None)
def _font(prefix: str) -> tuple[str, dict[str, int]]:
    """The font family and the charmap of an icon set, the font registered with Qt once."""
    stem = _FONTS[prefix]
    folder = _fonts_dir()
    ttf = next(folder.glob(f"{stem}-*.ttf"))
    charmap = next(folder.glob(f"{stem}-charmap-*.json"))
    font_id = QFontDatabase.addApplicationFont(str(ttf))
    families = QFontDatabase.applicationFontFamilies(font_id)
    if not families:
        raise RuntimeError(f"Qt could not load the icon font {ttf.name}")
    codes = {name: int(code, 16) for name, code in json.loads(charmap.read_text(encoding="utf-8")).items()}
    return families[0], codes


class _GlyphEngine(QIconEngine):
    """Draws one glyph, in the palette's button-text colour (dimmed when disabled)."""

    def __init__(self, family: str, char: str) -> None:
        super().__init__()
        self.family = family
        self.char = char

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        palette = QGuiApplication.palette()
        group = QPalette.ColorGroup.Disabled if mode == QIcon.Mode.Disabled else QPalette.ColorGroup.Normal
        color = palette.color(group, QPalette.ColorRole.ButtonText)
        if mode == QIcon.Mode.Disabled:
            color.setAlphaF(0.45)
        font = QFont(self.family)
        font.setPixelSize(max(1, round(min(rect.width(), rect.height()) * 0.9)))
        painter.save()
        painter.setFont(font)
        painter.setPen(color)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.char)
        painter.restore()

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(QPoint(0, 0), size), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> "QIconEngine":
        return _GlyphEngine(self.family, self.char)


def icon(name: str) -> QIcon:
    """The icon named like qtawesome's ("mdi6.brush"); an empty icon for an unknown name."""
    prefix, _, glyph = name.partition(".")
    try:
        family, codes = _font(prefix)
    except (KeyError, StopIteration, ModuleNotFoundError, RuntimeError):
        return QIcon()
    code = codes.get(glyph)
    return QIcon() if code is None else QIcon(_GlyphEngine(family, chr(code)))
