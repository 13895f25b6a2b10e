"""Exceptions ovseg raises for bad user input; each message names the file or value at fault.

Every domain error derives from ``OvsegError`` (so a caller can catch ovseg's own failures in one
clause) and also from the builtin it refines (``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so
code written against the builtins keeps working. The CLIs print a domain error as one line; any other
exception is a bug and prints its traceback."""

from __future__ import annotations


class OvsegError(Exception):
    """Base of ovseg's domain errors: the message is meant for the user and names the fix."""


class UsageError(OvsegError, ValueError):
    """The user's input (a flag, a setting, an argument, what a capture holds) is out of range, contradicts
    other input or cannot serve the request; the message says which and how to fix it."""


class MissingFileError(OvsegError, FileNotFoundError):
    """A file or folder the user named, or that ovseg looked for on their behalf, does not exist."""


class SceneFormatError(OvsegError, ValueError):
    """A scene, camera or annotation file is malformed, truncated or of an unknown flavour."""


class MissingDependencyError(OvsegError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""


class BackendUnavailableError(OvsegError, RuntimeError):
    """A rendering backend cannot run here (missing package or no CUDA); the message says how to fix it."""


class Cancelled(OvsegError):
    """A long job (preprocessing, training) stopped because its cancel event was set."""


class FieldMismatchError(OvsegError, ValueError):
    """A language-field checkpoint does not belong to the scene (or encoder) it is used with."""


class ModelLoadError(OvsegError, RuntimeError):
    """Model weights cannot be loaded (offline, missing or mismatched file); the message names the model,
    the weights and how to pass a local checkpoint instead."""
