"""Outside policy families behind the ``vla.protocol.Policy`` interface.

Each adapter imports its library inside its own module and fails with ``MissingDependency`` carrying
the exact install command when the library is missing (docs/architecture.md, "Layout and import rules").
"""

from __future__ import annotations


class MissingDependency(ImportError):
    """An optional library is not installed. The message carries the exact install command."""

    def __init__(self, package: str, install: str) -> None:
        super().__init__(f"{package} is not installed. Install it with:\n    {install}")
        self.package = package
        self.install = install
