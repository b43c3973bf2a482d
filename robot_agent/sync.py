"""The robot's side of rollout: learn the desired version, fetch it, check it, warm it up, hot-swap.

``PolicySyncer`` is a background thread beside the control loop. Every ``poll_s`` it heartbeats to the
server (running version + health in, desired version out). When the desired version differs from what
the slot runs it:

1. takes it from memory if it is still loaded (a rollback: the previous version is kept, so it is
   immediate), else downloads the artifact tarball and unpacks it (``vla.manifest.unpack_artifact``:
   only the artifact's files, every sha256 checked against the manifest), and checks that the
   manifest's sha256 is the one the registry holds;
2. ``prepare_policy`` (``vla.checks``): refuses an action space that is not the robot's, loads the weights
   (``vla.artifact.load_artifact``), and runs a health probe: ``Observation.fake(spec)`` must give a
   chunk ``[K, A]`` of finite actions inside the robot's bounds (this also warms the model up);
3. hands it to ``PolicySlot.swap`` (taking effect at the next chunk boundary) — or, with
   ``boundary="episode"``, holds it until the runner calls ``at_episode_boundary()`` between episodes;
4. reports the swap (when it took effect) or the refusal and its reason. A refused version is not
   tried again by this process (versions are immutable; a download that fails is retried).

The control loop never waits on any of this: if the server is down the robot keeps running what it
has; reports are queued and sent when the server answers again. torch is imported only through
``vla``, and only when a policy is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from data_store.schema import RobotSpec
from vla.checks import Loader, Refused, load_vla_artifact, prepare_policy
from vla.protocol import Policy

log = logging.getLogger("robot_agent.sync")


class Slot(Protocol):
    """What the syncer needs of ``robot_agent.slot.PolicySlot``."""

    @property
    def version(self) -> str: ...

    def swap(self, policy: Policy, version: str) -> None: ...


@dataclass(frozen=True)
class SyncConfig:
    server: str  # http://host:port
    robot_id: str
    cache_dir: Path  # unpacked artifacts, one folder per version
    token: str | None = None
    poll_s: float = 1.0
    boundary: Literal["chunk", "episode"] = "chunk"
    timeout_s: float = 30.0
    keep_loaded: int = 2  # the running version and the one before it (an immediate rollback)
    swap_wait_s: float = 30.0  # how long to wait for the loop to reach a chunk boundary before reporting
    follow: bool = True  # False: remote inference, the server swaps; heartbeats and reports only


@dataclass
class SyncStatus:
    online: bool = False
    desired: str | None = None
    last_error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)
    swaps: int = 0


class PolicySyncer:
    """Keeps ``slot`` on the version the server wants for this robot (see the module docstring)."""

    def __init__(
        self,
        slot: Slot | None,
        spec: RobotSpec,
        config: SyncConfig,
        *,
        loader: Loader = load_vla_artifact,
        health: Callable[[], dict[str, Any]] | None = None,
        last_episode: Callable[[], str | None] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.slot, self.spec, self.config, self.loader = slot, spec, config, loader
        self.health = health or (lambda: {"ok": True})
        self.last_episode = last_episode or (lambda: None)
        self.status = SyncStatus()
        self.loaded: OrderedDict[str, Policy] = OrderedDict()
        if slot is not None:
            self.attach(slot)
        self._held: tuple[Policy, str, dict[str, Any]] | None = None  # waiting for an episode boundary
        self._reports: list[tuple[str, dict[str, Any]]] = []  # queued while the server is unreachable
        self._stop = stop_event or threading.Event()  # shared with the agent: one signal stops both
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _reports
        self._flushing = threading.Lock()  # one flusher at a time: the head is sent, then popped, exactly once
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=config.server, headers=headers, timeout=config.timeout_s)
        config.cache_dir.mkdir(parents=True, exist_ok=True)

    def attach(self, slot: Slot) -> None:
        """The slot to keep in sync (after ``bootstrap`` gave its first policy)."""
        self.slot = slot
        policy = getattr(slot, "policy", None)
        if policy is not None:
            self.loaded[slot.version] = policy

    def running_version(self) -> str | None:
        """What runs now: the slot's version, or, when not following (remote inference), the version
        that made the last chunk (``RemotePolicy.version``)."""
        if self.slot is None:
            return None
        if not self.config.follow:
            return str(getattr(getattr(self.slot, "policy", None), "version", self.slot.version))
        return self.slot.version

    def bootstrap(self, timeout_s: float = 300.0) -> tuple[Policy, str]:
        """For a robot that starts with no policy: register, then fetch, check and load the desired
        version, retrying every ``poll_s`` (server down, nothing rolled out yet, a refused version). A token the
        server refuses (401/403) raises :class:`AccessDenied` at once: with no policy yet, nothing can run while
        waiting, and the token is read once at start (a running robot keeps retrying instead)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.register()
                desired = self._heartbeat()
                version, sha = desired.get("version"), desired.get("sha256")
                if version is not None and version not in self.status.refused:
                    try:
                        return self._fetch_and_prepare(version, sha), version
                    except Refused as e:
                        self._refuse(version, str(e))
                self.status.last_error = f"no version to run yet (desired: {version})"
            except httpx.HTTPError as e:
                refused = isinstance(e, httpx.HTTPStatusError) and e.response.status_code in (401, 403)
                if refused:  # a robot starting with a bad token: waiting cannot help
                    raise AccessDenied(
                        f"the server refused this robot ({e}): pass a token with --token or FLYWHEEL_TOKEN "
                        "(`flywheel serve token create --role operator`)"
                    ) from None
                self.status.last_error = f"server unreachable: {e}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"no policy to run after {timeout_s} s: {self.status.last_error}")
            if self._stop.wait(self.config.poll_s):
                raise TimeoutError("stopped before a first policy arrived")

    # -- the thread ---------------------------------------------------------------------------------
    def start(self) -> PolicySyncer:
        self._thread = threading.Thread(target=self._run, name=f"sync-{self.config.robot_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout_s + self.config.swap_wait_s)
        self.http.close()

    def poke(self) -> None:
        """Poll now instead of at the next tick (a push from the server, or a test)."""
        self._wake.set()

    def _run(self) -> None:
        # The control loop comes first: downloads, hashing and loading run at a lower priority (Linux;
        # elsewhere, or where it is not allowed, at the normal one).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as e:  # the loop must outlive any one bad poll
                log.exception("sync: unexpected error")
                self.status.last_error = f"{type(e).__name__}: {e}"
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    # -- one poll -----------------------------------------------------------------------------------
    def register(self) -> None:
        """Tell the server this robot exists and what it can do (idempotent)."""
        self._post("/robots", {"robot_id": self.config.robot_id, "spec": self.spec.to_json()})

    def sync_once(self) -> str:
        """Heartbeat, then move toward the desired version. Returns what happened, in words."""
        if self.slot is None:
            raise RuntimeError("PolicySyncer.sync_once before attach(slot)")
        try:
            desired = self._heartbeat()  # first: it registers a robot the server does not know
            self._flush_reports()
        except httpx.HTTPError as e:
            self.status.online = False
            self.status.last_error = f"server unreachable: {e}"
            return "offline: keep running " + str(self.slot.version)
        self.status.online = True
        version, sha = desired.get("version"), desired.get("sha256")
        self.status.desired = version
        if not self.config.follow:
            return "remote inference: the server swaps"
        if version is None or version == self.slot.version:
            return "up to date"
        with self._lock:
            held = self._held
        if held is not None and held[1] == version:
            return "waiting for the episode boundary"
        if version in self.status.refused:
            return f"refused {version}: {self.status.refused[version]}"
        started = time.monotonic()
        cached = version in self.loaded
        try:
            policy = self.loaded[version] if cached else self._fetch_and_prepare(version, sha)
        except Refused as e:
            return self._refuse(version, str(e))
        except httpx.HTTPError as e:
            self.status.last_error = f"download of {version} failed: {e}"
            return f"download failed, will retry: {e}"
        detail = {"from": self.slot.version, "cached": cached, "prepare_s": round(time.monotonic() - started, 3)}
        if self.config.boundary == "episode":
            with self._lock:
                self._held = (policy, version, detail)
            return f"{version} ready; swapping at the next episode boundary"
        return self._swap(policy, version, detail)

    def at_episode_boundary(self) -> str | None:
        """Call between episodes (``boundary="episode"``): a prepared version goes in now."""
        with self._lock:
            held, self._held = self._held, None
        if held is None:
            return None
        return self._swap(*held)

    def report_episode(
        self, episode_id: str, *, version: str, task: str, success: bool | None, length: int, reason: str = ""
    ) -> None:
        """Index a finished episode on the server (queued, like swap reports, while it is down)."""
        body = {
            "episode_id": episode_id,
            "robot_id": self.config.robot_id,
            "policy_version": version,
            "task": task,
            "success": "unknown" if success is None else ("true" if success else "false"),
            "length": length,
            "ended_at": _now(),
            "reason": reason[:2000] or None,
        }
        with self._lock:  # the syncer thread sends it; the control loop never waits on the network
            self._reports.append(("/episodes", body))
        self.poke()

    # -- steps --------------------------------------------------------------------------------------
    def _heartbeat(self) -> dict[str, Any]:
        body = {
            "running_version": self.running_version(),
            "health": self.health(),
            "last_episode_id": self.last_episode(),
        }
        resp = self.http.post(f"/robots/{self.config.robot_id}/heartbeat", json=body)
        if resp.status_code == 404:  # the server forgot us (a fresh database): register again
            self.register()
            resp = self.http.post(f"/robots/{self.config.robot_id}/heartbeat", json=body)
        _raise_for(resp)
        result: dict[str, Any] = resp.json()
        return result

    def _fetch_and_prepare(self, version: str, sha: str | None) -> Policy:
        folder = self.config.cache_dir / version
        if not (folder / "manifest.json").is_file():
            self._download(version, folder)
        manifest_sha = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
        if sha is not None and manifest_sha != sha:
            shutil.rmtree(folder, ignore_errors=True)
            raise Refused(f"manifest sha256 {manifest_sha[:12]}… is not the registry's {sha[:12]}…")
        try:
            policy = prepare_policy(folder, self.spec, loader=self.loader)
        except Refused:
            shutil.rmtree(folder, ignore_errors=True)  # fetch afresh if the version is ever fixed server-side
            raise
        self.loaded[version] = policy
        return policy

    def _download(self, version: str, folder: Path) -> None:
        from vla.manifest import ArtifactError, unpack_artifact

        with tempfile.TemporaryDirectory(prefix=".download-", dir=self.config.cache_dir) as tmp:
            tarball = Path(tmp) / "artifact.tar.gz"
            with self.http.stream("GET", f"/policies/{version}/download") as resp:
                if resp.status_code == 404:
                    resp.read()
                    raise Refused(f"the server has no artifact for {version}: {_reason(resp)}")
                _raise_for(resp)
                with tarball.open("wb") as f:
                    for block in resp.iter_bytes(1 << 20):
                        f.write(block)
            unpacked = Path(tmp) / "artifact"
            try:
                unpack_artifact(tarball, unpacked)
            except ArtifactError as e:
                raise Refused(f"artifact check failed: {e}") from e
            shutil.rmtree(folder, ignore_errors=True)
            unpacked.rename(folder)

    def _swap(self, policy: Policy, version: str, detail: dict[str, Any]) -> str:
        slot = self.slot
        assert slot is not None
        requested = time.monotonic()
        slot.swap(policy, version)
        wait = getattr(slot, "wait_until_active", None)
        if wait is not None:
            wait(version, self.config.swap_wait_s)
        else:
            while slot.version != version and time.monotonic() - requested < self.config.swap_wait_s:
                if self._stop.wait(0.002):
                    break
        if slot.version != version:
            return f"{version} handed to the slot; not in effect after {self.config.swap_wait_s} s"
        detail = {**detail, "boundary_wait_s": round(time.monotonic() - requested, 4)}
        self.loaded[version] = policy
        self.loaded.move_to_end(version)
        while len(self.loaded) > self.config.keep_loaded:
            self.loaded.popitem(last=False)
        self.status.swaps += 1
        self._report({"version": version, "ok": True, "at": _now(), "detail": detail})
        return f"swapped to {version}"

    def _refuse(self, version: str, reason: str) -> str:
        log.warning("refusing %s: %s", version, reason)
        self.status.refused[version] = reason
        self._report({"version": version, "ok": False, "reason": reason, "at": _now(), "detail": {}})
        return f"refused {version}: {reason}"

    def _report(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._reports.append((f"/robots/{self.config.robot_id}/swaps", body))
        try:
            self._flush_reports()
        except httpx.HTTPError as e:
            self.status.last_error = f"report queued: {e}"

    def _flush_reports(self) -> None:
        """Send queued reports in order; stop at the first failure (they stay queued).

        The robot's thread (a swap at an episode boundary, an episode's index) and the sync thread both
        flush; without ``_flushing`` both could send the same head and both pop it (a report sent twice, the
        next one dropped, or ``pop from empty list`` in the robot's thread, which the first promoted demo hit)."""
        with self._flushing:
            while True:
                with self._lock:
                    if not self._reports:
                        return
                    path, body = self._reports[0]
                try:
                    self._post(path, body)
                except httpx.HTTPStatusError as e:
                    if e.response.status_code in _RETRY or e.response.status_code >= 500:
                        raise
                    log.warning("the server refused a report, dropping it: %s", e)  # resending cannot help
                with self._lock:
                    self._reports.pop(0)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.post(path, json=body)
        _raise_for(resp)
        out: dict[str, Any] = resp.json()
        return out


class AccessDenied(RuntimeError):
    """The server refuses this robot's token (401/403) before it has any policy to run."""


_RETRY = (401, 403, 404, 408, 429)  # auth fixed later, robot registered on the next heartbeat, overload


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _reason(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("reason", resp.text))
    except ValueError:
        return resp.text[:200]


def _raise_for(resp: httpx.Response) -> None:
    """Server errors and refusals as ``httpx.HTTPStatusError`` carrying the server's reason."""
    if resp.status_code >= 400:
        raise httpx.HTTPStatusError(
            f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {_reason(resp)}",
            request=resp.request,
            response=resp,
        )


def run_agent(
    config: SyncConfig,
    *,
    task: str = "drawer-close",
    episodes: int | None = None,
    max_steps: int | None = None,
    realtime: bool = False,
    initial_policy: str | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """A simulated robot agent kept in sync with the server (``robot_agent.session`` without recording): episodes
    of ``task`` one after another (``episodes`` of them, or until ``stop_event``), each indexed on the server, with
    the syncer swapping versions behind the loop. Starts on ``initial_policy`` (a ``load_policy`` spec) or, without
    one, on the server's desired version; ``config.follow`` False is remote inference. Returns the episodes run."""
    from robot_agent.session import AgentSession, SessionConfig

    session = SessionConfig(
        task=task,
        policy="remote" if not config.follow else (initial_policy or "server"),
        episodes=episodes,
        store=None,
        max_steps=max_steps,
        label="sim",
        robot_id=config.robot_id,
        realtime=realtime,
        server=config.server,
        token=config.token,
        swap_at=config.boundary,
        cache=config.cache_dir,
        poll_s=config.poll_s,
    )
    with AgentSession(session, stop_event=stop_event or threading.Event()) as agent:
        return sum(1 for _ in agent.run())


def main() -> None:
    """``python -m robot_agent.sync --server URL --robot-id ID``: the simulated robot agent process."""
    import signal

    import typer

    from robot_agent.session import SessionError

    def agent(
        server: str = typer.Option(..., help="The control-plane server, http://host:port."),
        robot_id: str = typer.Option(..., help="This robot's id in the registry."),
        task: str = typer.Option("drawer-close", help="Meta-World task the simulated arm runs."),
        cache: Path = typer.Option(Path("flywheel_data/robot_cache"), help="Where downloaded versions are kept."),
        episodes: int | None = typer.Option(None, min=1, help="Stop after this many (default: run until SIGTERM)."),
        max_steps: int | None = typer.Option(None, min=1, help="Steps per episode (default: the task's)."),
        poll_s: float = typer.Option(1.0, min=0.05, help="Heartbeat / desired-version poll period."),
        boundary: str = typer.Option("chunk", help="Swap at the next 'chunk' or 'episode' boundary."),
        realtime: bool = typer.Option(False, help="Pace the loop at the robot's fps (10 Hz)."),
        policy: str | None = typer.Option(None, help="Start on this policy (scripted, random, a folder)."),
        remote: bool = typer.Option(False, help="Remote inference: chunks from the server (no local GPU/torch)."),
    ) -> None:
        """A simulated robot agent kept in sync with the server (token from FLYWHEEL_TOKEN).
        SIGTERM or Ctrl-C stops it after the current episode."""
        if boundary not in ("chunk", "episode"):
            raise typer.BadParameter("expected 'chunk' or 'episode'", param_hint="--boundary")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        config = SyncConfig(
            server=server,
            robot_id=robot_id,
            cache_dir=cache,
            token=os.environ.get("FLYWHEEL_TOKEN"),
            poll_s=poll_s,
            boundary="episode" if boundary == "episode" else "chunk",
            follow=not remote,
        )
        try:
            n = run_agent(config, task=task, episodes=episodes, max_steps=max_steps, realtime=realtime,
                          initial_policy=policy, stop_event=stop)  # fmt: skip
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except SessionError as e:
            typer.secho(str(e), fg="red", err=True)
            raise typer.Exit(1) from None
        log.info("agent stopped after %d episodes", n)

    typer.run(agent)


if __name__ == "__main__":
    main()
