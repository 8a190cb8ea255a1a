"""The studio's Qt widgets (PySide6). Nothing here imports torch; all work goes through the engine's API."""
