"""A contact sheet of an episode: evenly spaced frames of every camera tiled into one image, saved as PNG.

PNG encoding goes through PyAV's ``png`` encoder (a core dependency already), so no imaging library
is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_store.episodes import EpisodeReader


def contact_sheet(reader: EpisodeReader, count: int = 16, *, columns: int = 8, gap: int = 2) -> np.ndarray:
    """uint8 [rows * (H + gap), columns * (W + gap), 3]: ``count`` frames evenly spaced over the episode,
    one block of rows per camera, in camera order."""
    steps = np.unique(np.linspace(0, len(reader) - 1, num=min(count, len(reader))).round().astype(int))
    blocks = []
    for camera in reader.cameras:
        frames = np.stack([reader.frame(camera, int(t)) for t in steps])
        blocks.append(tile(frames, columns=min(columns, len(frames)), gap=gap))
    width = max(b.shape[1] for b in blocks)
    return np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0))) for b in blocks])


def tile(frames: np.ndarray, *, columns: int, gap: int = 2) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one image, ``columns`` frames a row, ``gap`` black pixels between them."""
    n, h, w, _ = frames.shape
    rows = -(-n // columns)
    sheet = np.zeros((rows * (h + gap), columns * (w + gap), 3), np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = frame
    return sheet


def write_png(image: np.ndarray, path: str | Path) -> None:
    """Save uint8 [H, W, 3] as a PNG file."""
    import av

    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = image.shape[1], image.shape[0], "rgb24"  # type: ignore[attr-defined]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    data = b"".join(bytes(p) for p in codec.encode(frame)) + b"".join(bytes(p) for p in codec.encode(None))  # type: ignore[attr-defined]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)


def read_png(path: str | Path) -> np.ndarray:
    """uint8 [H, W, 3] from a PNG file (for checks and tests)."""
    import av

    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")
