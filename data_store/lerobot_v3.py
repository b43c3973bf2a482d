"""Import and export of the LeRobotDataset v3.0 on-disk format, without the ``lerobot`` package.

Layout (as written by lerobot 0.4.4 itself; the reference is ``shared/fixtures/lerobot_v3_metaworld``)::

    meta/info.json                         codebase_version "v3.0", fps, features, path templates, totals
    meta/stats.json                        per-feature min/max/mean/std/count/q01..q99 over the dataset
    meta/tasks.parquet                     task (natural-language instruction, as pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, data/video file indices,
                                           dataset_from/to_index, videos/<key>/from/to_timestamp, stats/<key>/<stat>
    data/chunk-000/file-000.parquet        one row per frame: observation.state, action, next.success,
                                           timestamp, frame_index, episode_index, index, task_index
    videos/<key>/chunk-000/file-000.mp4    every episode's frames back to back; an episode is the time range
                                           [from_timestamp, to_timestamp) of the file

Mapping to the episode store: ``observation.images.<camera>`` <-> ``images/<camera>``; ``observation.state``
<-> ``state``; ``action`` <-> ``action``; a LeRobot *task* is our *instruction*; an episode's success is the
last ``next.success`` of its frames (the export sets it on the last frame of a successful episode).
The export adds ``flywheel.*`` columns to the episodes table (our episode id, task name, success label,
policy version) so a round trip keeps them; lerobot ignores extra columns.

Video: AV1 (libsvtav1), yuv420p, GOP 2, CRF 30: lerobot's defaults (``encode_video_frames``), decoded with
PyAV's bundled dav1d. Departures from lerobot: the export writes every episode into one data file and one
video file per camera (lerobot starts a new file past 100 MB / 200 MB; the import follows the indices of
any layout); depth cameras are not exported (lerobot 0.4 has no depth video); image statistics are
computed over every frame of an episode instead of a sample of frames.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from data_store.episode_info import EpisodeInfo, success_label
from data_store.episodes import EpisodeStore
from data_store.schema import Observation, RobotSpec

CODEBASE_VERSION = "v3.0"
IMAGE_PREFIX = "observation.images."
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
Progress = Callable[[int], None]  # called with the number of episodes just done (1)


@dataclass(frozen=True)
class VideoCodec:
    """How the export encodes each camera (lerobot's defaults: AV1, yuv420p, GOP 2, CRF 30)."""

    name: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    gop: int = 2
    crf: int = 30

    @property
    def codec_label(self) -> str:
        """The ``video.codec`` value in info.json (lerobot writes the stream's codec name)."""
        return {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "libx265": "hevc"}.get(self.name, self.name)


class LeRobotFormatError(ValueError):
    """The folder is not a LeRobotDataset v3.0 this module can read, or the episodes cannot be exported."""


# ---- import --------------------------------------------------------------------------------------------


def import_lerobot(
    src: str | Path,
    store: EpisodeStore,
    *,
    task_names: dict[str, str] | None = None,
    robot_id: str | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Import every episode of the LeRobotDataset v3.0 at ``src`` into ``store``; returns the new episode ids.

    ``task_names`` maps an instruction (LeRobot task) to our task name; by default the task name is the
    instruction itself, or the ``flywheel.task`` column when the dataset came from our export.
    """
    root = Path(src)
    info = _read_info(root)
    fps = float(info["fps"])
    features: dict[str, Any] = info["features"]
    cameras = {k: v for k, v in features.items() if v.get("dtype") == "video" and k.startswith(IMAGE_PREFIX)}
    unsupported = [k for k, v in features.items() if v.get("dtype") in ("image", "video") and k not in cameras]
    if unsupported:
        raise LeRobotFormatError(
            f"{root}: features {unsupported} are not supported (only video 'observation.images.*')"
        )
    for key, feat in cameras.items():
        if feat.get("info", {}).get("video.is_depth_map"):
            raise LeRobotFormatError(f"{root}: depth video {key!r} is not supported")
    if "action" not in features:
        raise LeRobotFormatError(f"{root}: no 'action' feature")

    tasks = _read_tasks(root)
    episodes = _read_episode_rows(root)
    data = _read_frame_columns(root)
    spec = _spec_from_features(features, data, fps)
    frame_episode = np.asarray(data["episode_index"])
    order = np.lexsort((np.asarray(data["frame_index"]), frame_episode))  # rows by (episode, frame)

    ids: list[str] = []
    for row in sorted(episodes, key=lambda r: int(r["episode_index"])):
        ep = int(row["episode_index"])
        rows = order[frame_episode[order] == ep]
        n = int(row["length"])
        if len(rows) != n:
            raise LeRobotFormatError(f"{root}: episode {ep} has {len(rows)} data rows, metadata says {n}")
        images = {
            _camera_name(key): _decode_episode(root, info, key, row, n, fps, spec.cameras[_camera_name(key)])
            for key in cameras
        }
        state = _column(data, "observation.state", rows, spec.state_dim)
        action = _column(data, "action", rows, spec.action_dim)
        timestamps = (
            np.asarray(data["timestamp"], dtype=np.float64)[rows] if "timestamp" in data else np.arange(n) / fps
        )
        instruction = tasks[int(data["task_index"][rows[0]])] if "task_index" in data else row["tasks"][0]
        label = _success(data, rows, row)
        task = (task_names or {}).get(instruction) or row.get("flywheel.task") or instruction
        meta = {"source": "lerobot_v3", "dataset": str(root), "episode_index": ep}
        if row.get("flywheel.episode_id"):
            meta["exported_episode_id"] = row["flywheel.episode_id"]
        writer = store.create(
            spec,
            task=task,
            instruction=instruction,
            robot_id=robot_id or info.get("robot_type") or "lerobot",
            policy_version=row.get("flywheel.policy_version") or "unknown",
            meta=meta,
            buffer_s=2.0,  # batched writes: an import is not a live recording, it can queue freely
        )
        with writer:
            for t in range(n):
                obs = Observation(
                    images={name: frames[t] for name, frames in images.items()},
                    state=state[t],
                    instruction=instruction,
                    timestamp=float(timestamps[t]),
                )
                writer.append(obs, action[t])
            writer.finish({"true": True, "false": False}.get(label), reason="imported")
        ids.append(writer.episode_id)
        if progress:
            progress(1)
    return ids


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise LeRobotFormatError(f"{root}: no meta/info.json (not a LeRobotDataset)")
    info = json.loads(path.read_text())
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise LeRobotFormatError(f"{root}: codebase_version {version!r}, expected {CODEBASE_VERSION}")
    return info


def _read_tasks(root: Path) -> dict[int, str]:
    import pyarrow.parquet as pq

    table = pq.read_table(root / "meta" / "tasks.parquet")
    name_col = "task" if "task" in table.column_names else "__index_level_0__"
    return dict(zip(table["task_index"].to_pylist(), table[name_col].to_pylist(), strict=True))


def _parquet_tables(root: Path, folder: str) -> list[Any]:
    """Every ``<folder>/chunk-*/file-*.parquet`` (lerobot starts new files as they grow), in order."""
    import pyarrow.parquet as pq

    files = sorted((root / folder).glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotFormatError(f"{root}: no {folder}/chunk-*/file-*.parquet")
    return [pq.read_table(f) for f in files]


def _read_episode_rows(root: Path) -> list[dict[str, Any]]:
    """meta/episodes as one dict per episode, without the per-episode stats columns."""
    rows = []
    for table in _parquet_tables(root, "meta/episodes"):
        rows += table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
    return rows


def _read_frame_columns(root: Path) -> dict[str, np.ndarray]:
    """data/ as one array per column over every frame of every episode."""
    import pyarrow as pa

    return _columns(pa.concat_tables(_parquet_tables(root, "data")))


def _success(data: dict[str, np.ndarray], rows: np.ndarray, row: dict[str, Any]) -> str:
    """Our label when the dataset came from our export; else the episode's last ``next.success``."""
    if row.get("flywheel.success") is not None:
        return success_label(row["flywheel.success"])
    if "next.success" in data:
        return success_label(bool(data["next.success"][rows[-1]]))
    return "unknown"


def _columns(table: Any) -> dict[str, np.ndarray]:
    """Columns as numpy arrays; (fixed-size) list columns become [N, D] arrays."""
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        col = table[name].combine_chunks()
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _column(data: dict[str, np.ndarray], name: str, rows: np.ndarray, dim: int) -> np.ndarray:
    if name not in data:
        return np.zeros((len(rows), dim), np.float32)
    return np.asarray(data[name], dtype=np.float32).reshape(len(data[name]), -1)[rows]


def _camera_name(key: str) -> str:
    return key[len(IMAGE_PREFIX) :].replace("/", "_")


def _spec_from_features(features: dict[str, Any], data: dict[str, np.ndarray], fps: float) -> RobotSpec:
    """The RobotSpec of the dataset; a LeRobotDataset records no action limits, so the recorded range stands in."""
    action_dim = int(features["action"]["shape"][0])
    state_dim = int(features["observation.state"]["shape"][0]) if "observation.state" in features else 0
    actions = np.asarray(data["action"], dtype=np.float32).reshape(-1, action_dim)
    low, high = actions.min(axis=0), actions.max(axis=0)
    cameras = {
        _camera_name(k): (int(v["shape"][0]), int(v["shape"][1]))
        for k, v in features.items()
        if v.get("dtype") == "video" and k.startswith(IMAGE_PREFIX)
    }
    return RobotSpec(
        action_dim=action_dim,
        state_dim=state_dim,
        action_low=tuple(float(x) for x in low),
        action_high=tuple(float(x) for x in high),
        cameras=cameras,
        fps=fps,
        action_names=tuple(features["action"].get("names") or ()),
        state_names=tuple((features.get("observation.state") or {}).get("names") or ()),
    )


def _decode_episode(
    root: Path, info: dict[str, Any], key: str, row: dict[str, Any], n: int, fps: float, size: tuple[int, int]
) -> np.ndarray:
    """uint8 [n, H, W, 3]: the frames of one episode, cut from its video file by timestamp."""
    import av

    path = root / info.get("video_path", VIDEO_PATH).format(
        video_key=key,
        chunk_index=int(row[f"videos/{key}/chunk_index"]),
        file_index=int(row[f"videos/{key}/file_index"]),
    )
    start = float(row[f"videos/{key}/from_timestamp"])
    frames = np.zeros((n, *size, 3), np.uint8)
    seen = np.zeros(n, bool)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            i = round((float(frame.pts * stream.time_base) - start) * fps)
            if i < 0:
                continue
            if i >= n:
                break
            frames[i] = frame.to_ndarray(format="rgb24")
            seen[i] = True
    if not seen.all():
        raise LeRobotFormatError(
            f"{path}: episode {row['episode_index']} is missing frames {np.flatnonzero(~seen)[:5]}"
        )
    return frames


# ---- export --------------------------------------------------------------------------------------------


def export_lerobot(
    store: EpisodeStore,
    episodes: Sequence[EpisodeInfo] | Sequence[str],
    out: str | Path,
    *,
    codec: VideoCodec | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``episodes`` of ``store`` as a LeRobotDataset v3.0 at ``out``; returns ``out``.

    All episodes must share one RobotSpec (cameras, dimensions, fps): a LeRobotDataset has one feature set.
    """
    import pyarrow.parquet as pq

    codec = codec or VideoCodec()
    infos = _exportable(store, episodes)
    spec = infos[0].spec
    root = _empty_folder(Path(out), overwrite)

    features = _features(spec, codec)
    video_keys = [IMAGE_PREFIX + c for c in spec.cameras]
    tasks: dict[str, int] = {}
    for i in infos:
        tasks.setdefault(i.instruction, len(tasks))

    data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_schema = _data_schema(spec)
    encoders = {
        key: _VideoWriter(root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0), spec, codec)
        for key in video_keys
    }
    episode_rows: list[dict[str, Any]] = []
    episode_stats: list[dict[str, dict[str, Any]]] = []
    index = 0
    with pq.ParquetWriter(data_path, data_schema) as data_writer:
        for ep, info in enumerate(infos):
            reader = store.open(info.episode_id)
            n = len(reader)
            columns = _frame_columns(reader, info, n, ep, index, tasks[info.instruction], spec.fps)
            data_writer.write_table(_data_table(columns, data_schema))
            ep_stats = {name: _stats(col) for name, col in columns.items()}
            videos, image_stats = _write_videos(reader, n, spec.fps, encoders)
            ep_stats.update(image_stats)
            episode_stats.append(ep_stats)
            episode_rows.append(_episode_row(ep, info, n, index, videos, ep_stats))
            index += n
            if progress:
                progress(1)
    for enc in encoders.values():
        enc.close()
    _write_meta(root, spec, features, tasks, episode_rows, episode_stats, index)
    return root


def _exportable(store: EpisodeStore, episodes: Sequence[EpisodeInfo] | Sequence[str]) -> list[EpisodeInfo]:
    """The episodes with steps, checked to share one RobotSpec."""
    infos = [store.info(e) if isinstance(e, str) else e for e in episodes]
    infos = [i for i in infos if i.length > 0]
    if not infos:
        raise LeRobotFormatError("no episodes with steps to export")
    spec = infos[0].spec
    for i in infos[1:]:
        if i.spec.to_json() != spec.to_json():
            raise LeRobotFormatError(
                f"episode {i.episode_id} has a different RobotSpec from {infos[0].episode_id}; export them separately"
            )
    return infos


def _empty_folder(root: Path, overwrite: bool) -> Path:
    """``root``, created, or emptied where ``overwrite`` allows it."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise LeRobotFormatError(f"{root} exists and is not empty")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _frame_columns(
    reader: Any, info: EpisodeInfo, n: int, ep: int, index: int, task_index: int, fps: float
) -> dict[str, np.ndarray]:
    """An episode's rows of the data file: its ``n`` frames, from dataset row ``index`` on."""
    success = np.zeros(n, bool)
    success[-1] = info.success == "true"
    return {
        "observation.state": reader.states()[:n],
        "action": reader.actions()[:n],
        "next.success": success,
        "timestamp": (np.arange(n) / fps).astype(np.float32),  # lerobot checks t = frame / fps
        "frame_index": np.arange(n, dtype=np.int64),
        "episode_index": np.full(n, ep, np.int64),
        "index": np.arange(index, index + n, dtype=np.int64),
        "task_index": np.full(n, task_index, np.int64),
    }


def _write_videos(
    reader: Any, n: int, fps: float, encoders: dict[str, _VideoWriter]
) -> tuple[dict[str, Any], dict[str, dict[str, list[Any]]]]:
    """Append an episode's frames to each camera's video: the episode row's video columns and the image stats."""
    videos: dict[str, Any] = {}
    stats: dict[str, dict[str, list[Any]]] = {}
    for key, encoder in encoders.items():
        frames = reader.images(key[len(IMAGE_PREFIX) :])[:n]
        start = encoder.write(frames)
        videos[f"videos/{key}/chunk_index"] = 0
        videos[f"videos/{key}/file_index"] = 0
        videos[f"videos/{key}/from_timestamp"] = start
        videos[f"videos/{key}/to_timestamp"] = start + n / fps
        stats[key] = _image_stats(frames)
    return videos, stats


def _episode_row(
    ep: int, info: EpisodeInfo, n: int, index: int, videos: dict[str, Any], ep_stats: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """An episode's row of the episodes table (lerobot's columns in lerobot's order, then ours)."""
    row: dict[str, Any] = {
        "episode_index": ep,
        "tasks": [info.instruction],
        "length": n,
        "data/chunk_index": 0,
        "data/file_index": 0,
        "dataset_from_index": index,
        "dataset_to_index": index + n,
        **videos,
    }
    for key, s in ep_stats.items():
        for stat, value in s.items():
            row[f"stats/{key}/{stat}"] = value
    row.update(
        {
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "flywheel.episode_id": info.episode_id,
            "flywheel.task": info.task,
            "flywheel.success": info.success,
            "flywheel.policy_version": info.policy_version,
        }
    )
    return row


def _write_meta(
    root: Path,
    spec: RobotSpec,
    features: dict[str, Any],
    tasks: dict[str, int],
    episode_rows: list[dict[str, Any]],
    episode_stats: list[dict[str, dict[str, Any]]],
    total_frames: int,
) -> None:
    """meta/: the episodes table, the tasks, the statistics and info.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), episodes_path)
    _write_tasks(root / "meta" / "tasks.parquet", tasks)
    stats = {key: _aggregate([e[key] for e in episode_stats]) for key in episode_stats[0]}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    info_json = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": len(episode_rows),
        "total_frames": total_frames,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": int(spec.fps) if float(spec.fps).is_integer() else spec.fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if spec.cameras else None,
        "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info_json, indent=4))


def _features(spec: RobotSpec, codec: VideoCodec) -> dict[str, Any]:
    fps = int(spec.fps) if float(spec.fps).is_integer() else spec.fps
    features: dict[str, Any] = {}
    for name, (h, w) in spec.cameras.items():
        features[IMAGE_PREFIX + name] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": h,
                "video.width": w,
                "video.codec": codec.codec_label,
                "video.pix_fmt": codec.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    features["observation.state"] = {
        "dtype": "float32",
        "shape": [spec.state_dim],
        "names": list(spec.state_names) or None,
    }
    features["action"] = {"dtype": "float32", "shape": [spec.action_dim], "names": list(spec.action_names) or None}
    features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _data_schema(spec: RobotSpec) -> Any:
    """The data parquet schema, with the ``huggingface`` metadata lerobot's writer (HF datasets) leaves."""
    import pyarrow as pa

    hf = {
        "observation.state": {
            "feature": {"dtype": "float32", "_type": "Value"},
            "length": spec.state_dim,
            "_type": "List",
        },
        "action": {"feature": {"dtype": "float32", "_type": "Value"}, "length": spec.action_dim, "_type": "List"},
        "next.success": {"dtype": "bool", "_type": "Value"},
        "timestamp": {"dtype": "float32", "_type": "Value"},
        **{k: {"dtype": "int64", "_type": "Value"} for k in ("frame_index", "episode_index", "index", "task_index")},
    }
    fields = [
        pa.field("observation.state", pa.list_(pa.float32(), spec.state_dim)),
        pa.field("action", pa.list_(pa.float32(), spec.action_dim)),
        pa.field("next.success", pa.bool_()),
        pa.field("timestamp", pa.float32()),
        *(pa.field(k, pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")),
    ]
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})


def _data_table(columns: dict[str, np.ndarray], schema: Any) -> Any:
    import pyarrow as pa

    arrays = []
    for field in schema:
        col = columns[field.name]
        if pa.types.is_fixed_size_list(field.type):
            flat = pa.array(np.ascontiguousarray(col, dtype=np.float32).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
        else:
            arrays.append(pa.array(col, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """tasks.parquet as lerobot writes it: a pandas DataFrame indexed by the task string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    table = pa.table(
        {
            "task_index": pa.array(list(tasks.values()), pa.int64()),
            "__index_level_0__": pa.array(list(tasks), pa.string()),
        }
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(table, path)


def _stats(col: np.ndarray) -> dict[str, list[Any]]:
    """min/max/mean/std/count/quantiles over axis 0, as lerobot's compute_stats lays them out."""
    x = col.reshape(len(col), -1)
    xf = x.astype(np.float64)
    out: dict[str, list[Any]] = {
        "min": x.min(axis=0).tolist(),
        "max": x.max(axis=0).tolist(),
        "mean": xf.mean(axis=0).tolist(),
        "std": xf.std(axis=0).tolist(),
        "count": [len(x)],
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(xf, q, axis=0).tolist()
    return out


def _aggregate(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset statistics from per-episode ones, as lerobot's ``aggregate_feature_stats`` combines them:
    count-weighted means (of the quantiles too), pooled variance, element-wise min and max."""
    counts = np.array([s["count"][0] for s in per_episode], np.float64)
    w = counts / counts.sum()
    weighted = lambda key: np.tensordot(w, np.array([s[key] for s in per_episode], np.float64), axes=1)  # noqa: E731
    mean = weighted("mean")
    means = np.array([s["mean"] for s in per_episode], np.float64)
    variances = np.array([s["std"] for s in per_episode], np.float64) ** 2 + (means - mean) ** 2
    out: dict[str, Any] = {
        "min": np.min(np.array([s["min"] for s in per_episode]), axis=0).tolist(),
        "max": np.max(np.array([s["max"] for s in per_episode]), axis=0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(np.tensordot(w, variances, axes=1)).tolist(),
        "count": [int(counts.sum())],
    }
    for name in QUANTILES:
        out[name] = weighted(name).tolist()
    return out


def _image_stats(frames: np.ndarray) -> dict[str, list[Any]]:
    """Per-channel statistics of uint8 [T, H, W, 3] frames scaled to [0, 1], shaped [3, 1, 1] like lerobot's."""
    x = frames.reshape(-1, 3).astype(np.float64) / 255.0
    s = _stats(x)
    out: dict[str, list[Any]] = {k: [[[v]] for v in vals] for k, vals in s.items() if k != "count"}
    out["count"] = [len(frames)]
    return out


class _VideoWriter:
    """One MP4 per camera; episodes are appended back to back and located by timestamp."""

    def __init__(self, path: Path, spec: RobotSpec, codec: VideoCodec) -> None:
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner on stderr unless told otherwise
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = spec.fps
        self.frames = 0
        self.container = av.open(str(path), "w")
        h, w = spec.cameras[path.parts[-3][len(IMAGE_PREFIX) :]]  # videos/<key>/chunk-000/file-000.mp4
        self.time_base = 1 / Fraction(spec.fps).limit_denominator(1001)
        stream = self.container.add_stream(
            codec.name,
            rate=1 / self.time_base,
            options={"g": str(codec.gop), "crf": str(codec.crf)},
        )
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, codec.pix_fmt
        self.stream = stream

    def write(self, frames: np.ndarray) -> float:
        """Append uint8 [T, H, W, 3]; returns the first frame's timestamp in the file (from_timestamp)."""
        import av

        start = self.frames / self.fps
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames
            frame.time_base = self.time_base
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.frames += 1
        return start

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def episode_ids_for_export(store: EpisodeStore, ids: Iterable[str] | None = None, **filters: Any) -> list[EpisodeInfo]:
    """The episodes an export takes: the given ids, else every complete episode matching ``filters``."""
    if ids:
        return [store.info(i) for i in ids]
    filters.setdefault("status", "complete")
    return store.episodes(**filters)
