"""The ``Camera`` interface: color (and optionally depth) frames with device timestamps."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    color: np.ndarray  # uint8 [H, W, 3], upright
    timestamp: float  # seconds, device clock where the device has one
    depth: np.ndarray | None = None  # uint16 [H, W], aligned to color
    index: int = 0  # device frame number; a gap means dropped frames


class Camera(ABC):
    name: str = "camera"

    @abstractmethod
    def connect(self) -> None:
        """Open the device and start streaming."""

    @abstractmethod
    def read(self, timeout_s: float = 1.0) -> Frame:
        """The newest frame; raises TimeoutError when none comes within ``timeout_s``."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop streaming and release the device. Safe to call twice."""

    @property
    def dropped_frames(self) -> int:
        """Frames the device produced that this camera never delivered."""
        return 0

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
