"""Dark and light themes: Fusion + a palette + the QSS in resources/styles/, and theme-coloured SVG icons.

Icons are single-colour SVGs drawn with ``currentColor``; they are rendered at 1x/2x/3x in the theme's text
colour so they stay crisp on high-DPI screens. Widgets get their icons through :func:`set_icon`, which
remembers them so a theme switch recolours every icon.
"""

from __future__ import annotations

import json
import weakref
from functools import cache, lru_cache

import shiboken6
from PySide6.QtCore import QByteArray, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QStyleFactory

from studio.paths import resources_dir

THEMES = ("dark", "light")
_current = {"name": "dark"}
_iconed: weakref.WeakKeyDictionary[QObject, tuple[str, str | None]] = weakref.WeakKeyDictionary()


@cache
def palettes() -> dict[str, dict[str, str]]:
    return json.loads((resources_dir() / "styles" / "palettes.json").read_text(encoding="utf-8"))


def colors(name: str | None = None) -> dict[str, str]:
    """The named colours of a theme (the current one by default)."""
    return palettes()[name or _current["name"]]


def style_sheet(name: str) -> str:
    """The QSS with the theme's colours filled in (longest token first, so @accent_hover beats @accent)."""
    text = (resources_dir() / "styles" / "studio.qss").read_text(encoding="utf-8")
    for token, value in sorted(colors(name).items(), key=lambda kv: -len(kv[0])):
        text = text.replace("@" + token, value)
    return text


def apply_theme(app: QApplication, name: str = "dark") -> None:
    """Style the whole application; safe to call again to switch themes."""
    if name not in THEMES:
        name = "dark"
    _current["name"] = name
    c = colors(name)
    app.setStyle(QStyleFactory.create("Fusion"))
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"],
        QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["surface"],
        QPalette.ColorRole.AlternateBase: c["panel"],
        QPalette.ColorRole.Text: c["text"],
        QPalette.ColorRole.Button: c["raised"],
        QPalette.ColorRole.ButtonText: c["text"],
        QPalette.ColorRole.Highlight: c["accent"],
        QPalette.ColorRole.HighlightedText: c["accent_text"],
        QPalette.ColorRole.ToolTipBase: c["raised"],
        QPalette.ColorRole.ToolTipText: c["text"],
        QPalette.ColorRole.PlaceholderText: c["muted"],
        QPalette.ColorRole.Link: c["accent"],
    }
    for role, value in roles.items():
        palette.setColor(role, QColor(value))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c["muted"]))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c["muted"]))
    app.setPalette(palette)
    app.setStyleSheet(style_sheet(name))
    _build_icon.cache_clear()
    for obj, (icon_name, color) in list(_iconed.items()):
        if shiboken6.isValid(obj):
            obj.setIcon(icon(icon_name, color))
        else:  # its window was closed and deleted
            del _iconed[obj]


def icon(name: str, color: str | None = None) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` drawn in ``color`` (default: the theme's text colour)."""
    return _build_icon(name, color or colors()["text"])


def set_icon(target: QObject, name: str, color: str | None = None) -> None:
    """Give a button or action an icon that follows theme switches."""
    _iconed[target] = (name, color)
    target.setIcon(icon(name, color))


@lru_cache(maxsize=256)
def _build_icon(name: str, color: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    result = QIcon()
    if not path.exists():
        return result
    svg = path.read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    ratio = QGuiApplication.instance().devicePixelRatio() if QGuiApplication.instance() else 1.0
    for size in (16, 20, 24, 32):
        for scale in sorted({1.0, 2.0, float(ratio)}):
            pixmap = QPixmap(int(size * scale), int(size * scale))
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            renderer.render(painter, QRectF(0, 0, pixmap.width(), pixmap.height()))
            painter.end()
            pixmap.setDevicePixelRatio(scale)
            result.addPixmap(pixmap)
    return result


CHECKER = 8  # checkerboard square, in logical pixels
_checker_cache: dict[tuple[str, str], QPixmap] = {}


def checker_tile(color_a: str | None = None, color_b: str | None = None) -> QPixmap:
    """The transparency checkerboard tile (theme colours by default), for use as a brush."""
    c = colors()
    key = (color_a or c["check_a"], color_b or c["check_b"])
    if key not in _checker_cache:
        tile = QPixmap(CHECKER * 2, CHECKER * 2)
        tile.fill(QColor(key[0]))
        painter = QPainter(tile)
        painter.fillRect(0, 0, CHECKER, CHECKER, QColor(key[1]))
        painter.fillRect(CHECKER, CHECKER, CHECKER, CHECKER, QColor(key[1]))
        painter.end()
        _checker_cache[key] = tile
    return _checker_cache[key]
