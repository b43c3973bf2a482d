"""The episode store: one Zarr v3 group per episode, written step by step, crash-safe, read from any process.

Layout of ``<root>/<episode_id>/`` (docs/architecture.md, "Contracts", Episode):

- ``images/<camera>``: uint8 ``[T, H, W, 3]``, one frame per chunk, blosc-zstd level 1;
- ``depth/<camera>``: uint16 ``[T, H, W]`` (only for depth cameras), one frame per chunk;
- ``state`` float32 ``[T, S]``, ``action`` float32 ``[T, A]``, ``timestamp`` float64 ``[T]``;
- group attributes: :class:`~data_store.episode_info.EpisodeInfo` (task, instruction, robot id, policy
  version, status, success label, fps, schema version, RobotSpec, reason, times, meta), plus ``length``
  and, while recording, ``writer`` (pid, host, process start time, heartbeat).

Step ``t`` holds the observation seen at tick ``t`` and the action sent after it.

Publishing protocol (zarr grows an array's shape before its chunk is written, as measured on our 2-core VM,
so a reader in another process could see frames that are not there yet): the writer resizes the arrays ahead in
blocks, writes the step's chunks (each chunk file is written atomically by zarr's LocalStore), and only
then rewrites the group attributes with the new ``length`` (also atomic). Readers read ``[:length]``.
So a ``kill -9`` loses at most the step being written, and every published step stays readable.
With ``buffer_s > 0`` a writer thread does the writing in batches and ``append`` only validates and
queues; at most ``buffer_s`` seconds of steps are unpublished at any time (the issue's bound is 1 s).

An episode whose status is still ``recording`` while its writer process is gone is reported, and marked
on disk, ``aborted`` with the reason, by :meth:`EpisodeStore.recover` (run when a store is opened).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import queue
import secrets
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.codecs import BloscCodec
from zarr.core.sync import sync

from data_store.catalog import CATALOG_FILE, Catalog
from data_store.episode_info import EpisodeInfo, success_label
from data_store.schema import Observation, RobotSpec, SchemaError, check_action, check_observation

__all__ = ["EpisodeInfo", "EpisodeNotFound", "EpisodeReader", "EpisodeStore", "EpisodeWriter", "new_episode_id"]

BLOCK_STEPS = 64  # arrays grow ahead in blocks of this many steps (one metadata rewrite per block)
MAX_BATCH_STEPS = 16  # buffered mode: at most this many queued steps per write-then-publish
STALE_AFTER_S = 120.0  # a writer on another host with no heartbeat for this long is presumed dead
_IMAGE_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="noshuffle")
_DEPTH_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


class EpisodeNotFound(KeyError):
    """No episode with that id in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "episode not found"


def new_episode_id(now: float | None = None) -> str:
    """``20261121T072233.123-ab12cd``: UTC start time to the millisecond, then 24 random bits.
    Sorting ids sorts episodes by start time."""
    t = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
    return f"{stamp}.{int(t * 1000) % 1000:03d}-{secrets.token_hex(3)}"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None if
    there is no such live process. Guards against a recycled pid; a zombie counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0], starttime fields[19]
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _writer_alive(writer: dict[str, Any] | None) -> bool:
    if not writer:
        return False
    if writer.get("host") != socket.gethostname():
        return time.time() - float(writer.get("heartbeat_at", 0.0)) < STALE_AFTER_S
    pid = int(writer["pid"])
    if Path("/proc").is_dir():
        start = _process_start(pid)
        return start is not None and start == writer.get("proc_start")
    try:  # no /proc (macOS): is there a process with that pid at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_node_name(kind: str, name: str) -> None:
    if not name or "/" in name or name.startswith("__") or name in (".", ".."):
        raise SchemaError(f"{kind} name {name!r}: expected a non-empty name without '/' or a leading '__'")


def _open_group(path: Path, mode: str = "r") -> zarr.Group:
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)  # type: ignore[arg-type]


class EpisodeWriter:
    """Appends steps to one episode. Not thread-safe: one recorder thread owns it."""

    def __init__(self, store: EpisodeStore, path: Path, info: EpisodeInfo, *, buffer_s: float = 0.0) -> None:
        self._store = store
        self.path = path
        group = _open_group(path, mode="r+")
        self._info = info
        self._spec = info.spec
        self._length = 0  # published steps
        self._accepted = 0  # steps taken by append (published, or queued when buffered)
        self._capacity = 0
        self._open = True
        self._writer: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "proc_start": _process_start(os.getpid()),
            "heartbeat_at": time.time(),
        }
        names = [*(f"images/{n}" for n in info.spec.cameras), *(f"depth/{n}" for n in info.spec.depth_cameras)]
        # write_empty_chunks: skip zarr's compare-with-fill-value of every chunk (2-3 ms a 640x480 frame,
        # on the event loop's one thread); a black frame is a frame to store anyway.
        self._arrays: dict[str, Any] = {
            name: group[name].with_config({"write_empty_chunks": True})  # type: ignore[union-attr]
            for name in [*names, "state", "action", "timestamp"]
        }
        # A step is written with one trip to zarr's event loop: the chunks concurrently, then the length.
        self._async_group = sync(zarr_async.open_group(store=str(path), mode="r+", use_consolidated=False))
        sync(self._async_group.update_attributes({**info.to_attrs(), "writer": dict(self._writer)}))
        # Buffered mode: append validates, copies and queues; a thread writes queued steps in batches
        # (zarr writes a batch's chunks concurrently, ~1.7x the steps/s of one at a time here) and
        # publishes after each batch. At most buffer_s seconds of steps are unpublished at any time (append
        # waits when that many are), so a kill -9 loses at most that much, the bound the issue sets (1 s).
        self._queue: queue.Queue[tuple[int, dict[str, np.ndarray]] | None] | None = None
        self._error: BaseException | None = None
        self._max_pending = max(1, math.ceil(buffer_s * info.fps))
        self._published = threading.Condition()
        if buffer_s > 0:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._drain, name=f"episode-writer-{info.episode_id}", daemon=True)
            self._thread.start()

    @property
    def episode_id(self) -> str:
        return self._info.episode_id

    @property
    def info(self) -> EpisodeInfo:
        return replace(self._info, length=self._length)

    def __len__(self) -> int:
        """Steps appended (in buffered mode some may still be queued; ``info.length`` counts published ones)."""
        return self._accepted

    def append(self, obs: Observation, action: np.ndarray) -> None:
        """Record step ``t = len(self)``: the observation seen and the action sent after it (float32 [A]).

        Raises ``SchemaError`` naming the field and the expected value when ``obs`` or ``action`` does
        not match the episode's RobotSpec; nothing of that step is written then.
        """
        if not self._open:
            raise RuntimeError(f"episode {self.episode_id} is already {self._info.status}; cannot append")
        self._raise_background_error()
        check_observation(obs, self._spec)
        check_action(action, self._spec)
        values: dict[str, np.ndarray] = {f"images/{name}": obs.images[name] for name in self._spec.cameras}
        for name in self._spec.depth_cameras:
            assert obs.depth is not None  # check_observation guarantees it
            values[f"depth/{name}"] = obs.depth[name]
        values["state"] = obs.state
        values["action"] = action
        values["timestamp"] = np.asarray(obs.timestamp, dtype=np.float64)
        t = self._accepted
        if self._queue is None:
            self._write_steps([(t, values)])
        else:
            with self._published:  # steps not yet published (queued or being written) stay within the buffer
                while t - self._length >= self._max_pending and self._error is None:
                    self._published.wait()
            self._raise_background_error()
            # copy: the caller may reuse its buffers for the next frame while this one waits in the queue
            self._queue.put((t, {k: np.array(v, copy=True) for k, v in values.items()}))
        self._accepted = t + 1

    def _write_steps(self, steps: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        """Write consecutive steps' chunks, then publish the new length."""
        while steps[-1][0] >= self._capacity:
            self._grow()
        self._writer["heartbeat_at"] = time.time()
        sync(self._write_chunks_then_publish(steps))
        self._length = steps[-1][0] + 1

    async def _write_chunks_then_publish(self, steps: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        # One write per array over the batch's slice: steps sharing a chunk (state, action, timestamp hold
        # 64 steps a chunk) must not be written concurrently, or one read-modify-write undoes another.
        # Frames (one per chunk) are written one chunk each, without stacking them into a copy first.
        first, last = steps[0][0], steps[-1][0]
        writes = []
        for name, arr in self._arrays.items():
            if arr.chunks[0] == 1:
                writes += [arr.async_array.setitem(t, values[name]) for t, values in steps]
            else:
                writes.append(arr.async_array.setitem(slice(first, last + 1), np.stack([v[name] for _, v in steps])))
        await asyncio.gather(*writes)
        # Publish only after every chunk of the steps is on disk, never the other way round.
        await self._async_group.update_attributes({"length": steps[-1][0] + 1, "writer": dict(self._writer)})

    def _drain(self) -> None:
        """The buffered mode's writer thread: batches of queued steps until the ``None`` sentinel."""
        assert self._queue is not None
        done = False
        while not done:
            batch = [self._queue.get()]
            while batch[-1] is not None and len(batch) < MAX_BATCH_STEPS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is None
            steps = [item for item in batch if item is not None]
            if steps and self._error is None:
                try:
                    self._write_steps(steps)
                except BaseException as e:  # kept for the recorder thread: the next append/finish raises it
                    self._error = e
            with self._published:
                self._published.notify_all()

    def _raise_background_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"episode {self.episode_id}: writing a step failed: {self._error}") from self._error

    def _flush(self) -> None:
        if self._queue is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _grow(self) -> None:
        # Resize ahead: a reader may now see a longer shape, but it reads only [:length].
        self._capacity += BLOCK_STEPS
        for arr in self._arrays.values():
            arr.resize((self._capacity, *arr.shape[1:]))

    def finish(self, success: bool | None, reason: str | None = None) -> EpisodeInfo:
        """Close the episode as ``complete`` with its success label (``None`` = unknown)."""
        return self._close("complete", success_label(success), reason)

    def abort(self, reason: str) -> EpisodeInfo:
        """Close the episode as ``aborted``; what was recorded stays readable."""
        return self._close("aborted", self._info.success, reason)

    def _close(self, status: str, success: str, reason: str | None) -> EpisodeInfo:
        if not self._open:
            raise RuntimeError(f"episode {self.episode_id} is already {self._info.status}")
        self._flush()  # every queued step is written (or failed) before the episode closes
        if self._error is not None:
            status, reason = "aborted", f"writing a step failed: {self._error}"
        # Trim the arrays to the published length first: a crash here leaves status "recording" with a
        # valid length, which recover() turns into "aborted". Trimming is tidiness, not correctness
        # (readers read [:length]), so a disk error here does not stop the episode from closing.
        with contextlib.suppress(OSError):
            for arr in self._arrays.values():
                if arr.shape[0] != self._length:
                    arr.resize((self._length, *arr.shape[1:]))
        info = replace(
            self._info,
            status=status,  # type: ignore[arg-type]
            success=success,  # type: ignore[arg-type]
            reason=reason,
            length=self._length,
            ended_at=time.time(),
        )
        attrs = info.to_attrs()
        attrs["writer"] = None
        sync(self._async_group.update_attributes(attrs))
        self._open = False
        self._info = info
        self._store.catalog.upsert(info)
        return info

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.finish(None, reason="closed without finish")
        else:
            self.abort(f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__)


class EpisodeReader:
    """Reads the published steps of one episode. ``refresh()`` picks up steps published since."""

    def __init__(self, path: Path, info: EpisodeInfo) -> None:
        self.path = path
        self.info = info
        self._group = _open_group(path)

    def refresh(self) -> EpisodeReader:
        """Re-read the attributes (new ``length``, status) and reopen the arrays."""
        self._group = _open_group(self.path)
        attrs = self._group.attrs.asdict()
        self.info = EpisodeInfo.from_attrs(attrs)
        if _stale(attrs):
            self.info = replace(self.info, status="aborted")
        return self

    @property
    def spec(self) -> RobotSpec:
        return self.info.spec

    @property
    def episode_id(self) -> str:
        return self.info.episode_id

    @property
    def cameras(self) -> list[str]:
        return list(self.info.spec.cameras)

    def __len__(self) -> int:
        return self.info.length

    def _read(self, name: str, index: int | slice | None = None) -> np.ndarray:
        try:
            arr: Any = self._group[name]
        except KeyError:
            raise KeyError(f"episode {self.episode_id} has no array {name!r}") from None
        if index is None:
            return np.asarray(arr[: len(self)])
        return np.asarray(arr[index])

    def images(self, camera: str) -> np.ndarray:
        """uint8 [T, H, W, 3]."""
        return self._read(f"images/{camera}")

    def depth(self, camera: str) -> np.ndarray:
        """uint16 [T, H, W]."""
        return self._read(f"depth/{camera}")

    def states(self) -> np.ndarray:
        """float32 [T, S]."""
        return self._read("state")

    def actions(self) -> np.ndarray:
        """float32 [T, A]."""
        return self._read("action")

    def timestamps(self) -> np.ndarray:
        """float64 [T]."""
        return self._read("timestamp")

    def frame(self, camera: str, t: int) -> np.ndarray:
        """uint8 [H, W, 3]: one frame, without reading the others."""
        return self._read(f"images/{camera}", self._index(t))

    def _index(self, t: int) -> int:
        if not -len(self) <= t < len(self):
            raise IndexError(f"step {t} out of range for episode {self.episode_id} of length {len(self)}")
        return t % len(self)

    def observation(self, t: int) -> Observation:
        """The observation recorded at step ``t``."""
        i = self._index(t)
        depth = {name: self._read(f"depth/{name}", i) for name in self.spec.depth_cameras}
        return Observation(
            images={name: self._read(f"images/{name}", i) for name in self.spec.cameras},
            state=self._read("state", i),
            instruction=self.info.instruction,
            timestamp=float(self._read("timestamp", i)),
            depth=depth or None,
        )


def _stale(attrs: dict[str, Any]) -> bool:
    return attrs.get("status") == "recording" and not _writer_alive(attrs.get("writer"))


class EpisodeStore:
    """A folder of episodes plus their catalog (``catalog.sqlite``). Created if missing."""

    def __init__(self, root: str | Path, *, create: bool = True, recover: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            if not create:
                raise FileNotFoundError(f"no episode store at {self.root}")
            self.root.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.root / CATALOG_FILE)
        if recover:
            self.recover()

    # ---- writing -------------------------------------------------------------------------------------
    def create(
        self,
        spec: RobotSpec,
        *,
        task: str,
        instruction: str,
        robot_id: str = "sim-0",
        policy_version: str = "unknown",
        meta: dict[str, Any] | None = None,
        buffer_s: float = 0.0,
    ) -> EpisodeWriter:
        """Start recording a new episode; returns its writer (also a context manager).

        ``buffer_s > 0``: ``append`` returns once the step is validated and queued, and a writer thread
        writes it (for cameras at 30 fps, so the control loop never waits on the disk); a crash loses at
        most ``buffer_s`` seconds of steps. ``0`` (default): ``append`` returns once the step is published.
        """
        for name in (*spec.cameras, *spec.depth_cameras):
            _check_node_name("camera", name)
        meta = dict(meta or {})
        try:
            json.dumps(meta)
        except TypeError as e:
            raise SchemaError(f"meta: expected JSON-serialisable values ({e})") from None
        while True:  # a fresh directory: mkdir is atomic, so two recorders never share an id
            started = time.time()
            episode_id = new_episode_id(started)
            path = self.root / episode_id
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        info = EpisodeInfo(
            episode_id=episode_id,
            task=task,
            instruction=instruction,
            robot_id=robot_id,
            policy_version=policy_version,
            status="recording",
            success="unknown",
            length=0,
            fps=float(spec.fps),
            started_at=started,
            ended_at=None,
            reason=None,
            spec=spec,
            meta=meta,
        )
        group = zarr.open_group(str(path), mode="w", use_consolidated=False)  # type: ignore[arg-type]
        for name, (h, w) in spec.cameras.items():
            group.create_array(
                f"images/{name}", shape=(0, h, w, 3), chunks=(1, h, w, 3), dtype="uint8", compressors=_IMAGE_CODEC
            )
        for name, (h, w) in spec.depth_cameras.items():
            group.create_array(
                f"depth/{name}", shape=(0, h, w), chunks=(1, h, w), dtype="uint16", compressors=_DEPTH_CODEC
            )
        group.create_array("state", shape=(0, spec.state_dim), chunks=(BLOCK_STEPS, spec.state_dim), dtype="float32")
        group.create_array("action", shape=(0, spec.action_dim), chunks=(BLOCK_STEPS, spec.action_dim), dtype="float32")
        group.create_array("timestamp", shape=(0,), chunks=(BLOCK_STEPS,), dtype="float64")
        writer = EpisodeWriter(
            self, path, info, buffer_s=buffer_s
        )  # writes the attributes: the group is an episode from here on
        self.catalog.upsert(info)
        return writer

    def label(self, episode_id: str, success: bool | str | None) -> EpisodeInfo:
        """The operator's success label, where the robot cannot tell. Not allowed while recording."""
        info = self.info(episode_id)
        if info.status == "recording":
            raise ValueError(f"episode {episode_id} is still recording; label it after it finishes")
        label = success_label(success)
        group = _open_group(self.root / episode_id, mode="r+")
        meta = dict(info.meta)
        meta["labelled_by"] = "operator"
        group.attrs.update({"success": label, "meta": meta})
        info = replace(info, success=label, meta=meta)
        self.catalog.upsert(info)
        return info

    # ---- reading -------------------------------------------------------------------------------------
    def __contains__(self, episode_id: object) -> bool:
        return isinstance(episode_id, str) and (self.root / episode_id / "zarr.json").is_file()

    def ids(self) -> list[str]:
        """Episode ids on disk (not through the catalog), oldest first."""
        return sorted(p.name for p in self.root.iterdir() if (p / "zarr.json").is_file())

    def _attrs(self, episode_id: str) -> dict[str, Any]:
        if not _is_episode_id(episode_id) or episode_id not in self:
            raise EpisodeNotFound(f"no episode {episode_id!r} in {self.root}")
        attrs = _open_group(self.root / episode_id).attrs.asdict()
        if "status" not in attrs:  # killed between mkdir and the first attribute write
            raise EpisodeNotFound(f"episode {episode_id!r} in {self.root} was never initialised")
        return attrs

    def info(self, episode_id: str) -> EpisodeInfo:
        """The episode's attributes, read from its group; a recording episode whose writer died is
        marked ``aborted`` first."""
        attrs = self._attrs(episode_id)
        if _stale(attrs):
            return self._mark_aborted(episode_id, attrs)
        return EpisodeInfo.from_attrs(attrs)

    def open(self, episode_id: str) -> EpisodeReader:
        return EpisodeReader(self.root / episode_id, self.info(episode_id))

    def episodes(
        self,
        task: str | list[str] | None = None,
        success: bool | str | None = None,
        policy_version: str | None = None,
        robot_id: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        status: str | list[str] | None = None,
    ) -> list[EpisodeInfo]:
        """Episodes matching every given filter, oldest first, through the catalog. Episodes still
        recording are re-read from disk (live length; aborted if their writer died)."""
        for stale in self.catalog.query(status="recording"):
            self._refresh_catalog(stale.episode_id)
        found = self.catalog.query(
            task=task,
            success=success,
            policy_version=policy_version,
            robot_id=robot_id,
            since=since,
            until=until,
            status=status,
        )
        return [self.info(i.episode_id) if i.status == "recording" else i for i in found]

    # ---- upkeep --------------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Bring the catalog in line with the folders (index episodes it lacks, drop deleted ones) and mark
        ``aborted`` every episode still ``recording`` whose writer process is gone. Returns the ids marked."""
        known = self.catalog.ids()
        recording = {i.episode_id for i in self.catalog.query(status="recording")}
        on_disk = self.ids()
        for gone in known - set(on_disk):  # deleted from the store by hand: drop from the index
            self.catalog.remove(gone)
        aborted: list[str] = []
        for episode_id in on_disk:
            if episode_id in known and episode_id not in recording:
                continue
            try:
                attrs = self._attrs(episode_id)
            except EpisodeNotFound:
                continue  # killed before its attributes were written: it holds no steps
            if _stale(attrs):
                self._mark_aborted(episode_id, attrs)
                aborted.append(episode_id)
            else:
                self.catalog.upsert(EpisodeInfo.from_attrs(attrs))
        return aborted

    def rebuild_catalog(self) -> int:
        """Drop the catalog and rebuild it from the episode groups alone. Returns the episode count."""
        infos = []
        for episode_id in self.ids():
            try:
                infos.append(self.info(episode_id))
            except EpisodeNotFound:
                continue
        return self.catalog.replace_all(infos)

    def _refresh_catalog(self, episode_id: str) -> EpisodeInfo | None:
        try:
            info = self.info(episode_id)
        except EpisodeNotFound:
            self.catalog.remove(episode_id)
            return None
        self.catalog.upsert(info)
        return info

    def _mark_aborted(self, episode_id: str, attrs: dict[str, Any]) -> EpisodeInfo:
        writer = attrs.get("writer") or {}
        reason = (
            f"recorder died (pid {writer.get('pid')} on {writer.get('host')}); "
            f"kept {attrs.get('length', 0)} published steps"
        )
        info = replace(
            EpisodeInfo.from_attrs(attrs),
            status="aborted",
            reason=reason,
            ended_at=float(writer.get("heartbeat_at") or attrs["started_at"]),
        )
        path = self.root / episode_id
        try:
            new = info.to_attrs()
            new["writer"] = None
            _open_group(path, mode="r+").attrs.update(new)
            for partial in path.rglob("*.partial"):  # temp files of a chunk write cut short
                partial.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only store: report it aborted without marking it
        self.catalog.upsert(info)
        return info


def _is_episode_id(name: str) -> bool:
    return bool(name) and "/" not in name and not name.startswith(".") and name != CATALOG_FILE
