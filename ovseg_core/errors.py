"""Exceptions ovseg raises for bad user input; each message names the file or value at fault."""

from __future__ import annotations


class SceneFormatError(ValueError):
    """A scene or camera file is malformed, truncated or of an unknown flavour."""


class BackendUnavailableError(RuntimeError):
    """A rendering backend cannot run here (missing package or no CUDA); the message says how to fix it."""
