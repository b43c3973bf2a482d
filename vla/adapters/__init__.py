"""Outside policy families behind the ``vla.protocol.Policy`` interface.

Each adapter imports its library inside its own module and fails with ``data_store.optional.MissingDependency`` carrying
the exact install command when the library is missing (docs/architecture.md, "Layout and import rules").
"""

from __future__ import annotations
