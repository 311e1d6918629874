"""The exception hierarchy.

Every message is a whole sentence that names the file, key or command involved
and says what to do about it.  The CLI turns a ``LeapfrogError`` into a one-line
message and exit code 2; nothing else in leapfrog catches them except the
runner, which turns a ``TargetError`` into an ``infra-error`` cell.
"""

from __future__ import annotations


class LeapfrogError(Exception):
    """Root of every error leapfrog raises on purpose."""


class ConfigError(LeapfrogError):
    """A target, suite or command-line option is invalid."""


class TargetError(LeapfrogError):
    """The target (not the software under test) failed: boot, connection, daemon."""


class ImageError(LeapfrogError):
    """An image could not be built, fetched or found."""
