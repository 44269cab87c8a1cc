"""The exception tree: every error a user can cause derives from EdgesiftError.

The CLI catches EdgesiftError and prints its one-line message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgesiftError(Exception):
    """Base of every expected, user-facing error."""


class ConfigError(EdgesiftError):
    """A configuration file or message is invalid."""


class InputError(EdgesiftError):
    """An input path cannot be used at all (missing, empty, unknown type)."""


class DecodeError(EdgesiftError):
    """One item of an input could not be decoded; sources turn it into a counted Skip."""


class SpoolError(EdgesiftError):
    """The local spool cannot be opened or written."""
