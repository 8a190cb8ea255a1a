"""Errors every layer may raise for a person's mistake (no Qt, no torch)."""


class UserError(Exception):
    """Something the person asked for cannot be done; the message says what and what to do instead."""


class ModelError(Exception):
    """A model folder cannot be used; ``str(error)`` is one sentence for a person."""


class EngineClosedError(RuntimeError):
    """Work was asked of an engine after ``close()``; ``str(error)`` is one sentence."""
