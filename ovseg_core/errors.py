"""Exceptions ovseg raises for bad user input; each message names the file or value at fault."""

from __future__ import annotations


class SceneFormatError(ValueError):
    """A scene or camera file is malformed, truncated or of an unknown flavour."""


class BackendUnavailableError(RuntimeError):
    """A rendering backend cannot run here (missing package or no CUDA); the message says how to fix it."""


class Cancelled(Exception):
    """A long job (preprocessing, training) stopped because its cancel event was set."""


class FieldMismatchError(ValueError):
    """A language-field checkpoint does not belong to the scene (or encoder) it is used with."""


class ModelLoadError(RuntimeError):
    """Model weights cannot be loaded (offline, missing or mismatched file); the message names the model,
    the weights and how to pass a local checkpoint instead."""
