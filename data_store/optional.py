"""Optional libraries (a robot's hardware SDK, an outside policy family): the one error a missing one raises.

Each backend imports its library inside its own module; without it, ``MissingDependency`` carries the exact
install command, which the CLIs print as their one-line error.
"""

from __future__ import annotations


class MissingDependency(ImportError):
    """An optional library is not installed. The message carries the exact install command."""

    def __init__(self, package: str, install: str) -> None:
        super().__init__(f"{package} is not installed. Install it with:\n    {install}")
        self.package = package
        self.install = install
