"""Prompt history: the prompts a person generated from, newest last, kept in a small JSON file.

``older``/``newer`` walk the history like a shell (Alt+Up / Alt+Down in the prompt box); the cursor resets
whenever a prompt is added.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.atomic import write_atomically
from studio.paths import user_data_dir

HISTORY_LIMIT = 200


class PromptHistory:
    def __init__(self, path: str | Path | None = None, limit: int = HISTORY_LIMIT):
        self.path = Path(path) if path is not None else user_data_dir() / "prompt-history.json"
        self.limit = limit
        self._entries: list[str] = self._load()
        self._cursor = len(self._entries)

    @property
    def entries(self) -> list[str]:
        """Oldest first."""
        return list(self._entries)

    def add(self, prompt: str) -> None:
        """Remember ``prompt`` as the newest entry (moving it if already there) and save."""
        prompt = prompt.strip()
        if prompt:
            if prompt in self._entries:
                self._entries.remove(prompt)
            self._entries.append(prompt)
            del self._entries[: -self.limit]
            self._save()
        self._cursor = len(self._entries)

    def older(self) -> str | None:
        """The entry before the cursor, or None at the oldest."""
        if self._cursor == 0 or not self._entries:
            return None
        self._cursor -= 1
        return self._entries[self._cursor]

    def newer(self) -> str | None:
        """The entry after the cursor; "" after the newest (back to an empty prompt); None if already there."""
        if self._cursor >= len(self._entries):
            return None
        self._cursor += 1
        return self._entries[self._cursor] if self._cursor < len(self._entries) else ""

    def _load(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # a missing or damaged history is an empty one; prompts are not precious
        return [str(p) for p in data if isinstance(p, str)][-self.limit :] if isinstance(data, list) else []

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(self._entries, ensure_ascii=False))
        except OSError:
            pass  # a read-only profile keeps history for this run only
