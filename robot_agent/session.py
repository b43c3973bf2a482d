"""One agent session: a robot running episodes of one task with a policy, recorded, and following the server.

The library under every way of running the robot: ``flywheel robot run`` (``robot_agent/cli.py``), ``flywheel demo``,
and the simulated agent process ``python -m robot_agent.sync``. ``SessionConfig`` is the operator's options as data;
``AgentSession`` opens the robot, the policy (a ``load_policy`` spec, the server's desired version, or remote
inference) and the syncer, runs the episodes and closes everything, whatever happens::

    with AgentSession(SessionConfig(task="drawer-close", policy="scripted", episodes=5)) as session:
        for record in session.run():
            print(record.result.reason, record.success)

Per episode: the scene seed is ``seed + i``; the recorder writes the episode into the store (unless ``store`` is
None); the success label is the robot's verdict (``label="sim"``), the operator's (``"ask"``, through ``ask``) or
left unknown; with a server, the episode is indexed there and a version held for the episode boundary goes in.
A setup mistake is a ``SessionError`` naming the option to fix; the CLI prints it in one line.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from robot_agent.loop import EpisodeInterrupted, EpisodeResult, Subscriber
from vla.threads import threads_bounded

Label = Literal["auto", "ask", "sim", "none"]


class SessionError(Exception):
    """A session that cannot start as configured. ``option`` names the CLI option to fix, when one does."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class SessionConfig:
    """What a session runs: the options of ``flywheel robot run``, as data."""

    robot: str = "sim"  # robot backend: sim | dds | lerobot
    task: str = "drawer-close"
    # a load_policy spec (scripted | random | replay:ID | artifact:DIR | a folder), "server" (the version the server
    # wants for this robot) or "remote" (chunks from the server's remote inference); None: scripted, or server
    policy: str | None = None
    episodes: int | None = 10  # None: until stopped
    store: Path | None = Path("flywheel_data/episodes")  # None: episodes are not recorded
    seed: int = 0  # scene seed of the first episode; episode i uses seed + i
    max_steps: int | None = None  # steps per episode (None: the robot's or task's)
    noise: float = 0.1  # the scripted expert's action noise
    label: Label = "auto"  # auto: the robot's verdict where it can tell, else ask
    camera: str | None = None  # sim camera (None: the task's)
    size: int = 64  # sim image height and width
    robot_id: str = "sim-0"
    connect_timeout: float = 15.0  # dds: seconds to wait for the arm's first joint states and images
    realtime: bool = False  # sim: pace on the wall clock like a physical arm
    safety: str | None = None  # safety preset (None: the robot's)
    temperature: float = 0.0  # the policy's sampling temperature (0: deterministic, what a robot runs)
    buffer_s: float = 1.0  # recorder buffer: a crash loses at most this much
    # the local policy's threads (torch, BLAS, OpenMP; 0: vla.threads' auto). One keeps the loop's ticks clear of a
    # trainer on the same machine: beside one, 0 missed ticks of 2880 with one thread, 6 with torch's two
    # (benchmarks/serving_swap.py --beside trainer_worker_policy, docs/results/contention)
    threads: int = 1
    server: str | None = None  # control plane: follow its rollouts and index episodes there
    token: str | None = None
    swap_at: Literal["chunk", "episode"] = "chunk"
    cache: Path = Path("flywheel_data/robot_cache")  # downloaded policy versions
    poll_s: float = 1.0  # heartbeat / desired-version poll period
    bootstrap_timeout_s: float = 300.0  # how long to wait for the server's first version

    @property
    def policy_spec(self) -> str:
        return self.policy or ("server" if self.server else "scripted")


@dataclass
class EpisodeRecord:
    """One episode of a session: its seed, what the loop returned, and its final success label."""

    seed: int
    result: EpisodeResult
    episode_id: str
    success: Literal["true", "false", "unknown"]


class View(Protocol):
    """What a session shows while it runs (the CLI's live display; nothing by default)."""

    def steps(self) -> Subscriber | None: ...

    def episode_start(self, index: int, total: int | None) -> None: ...

    def episode_end(self, record: EpisodeRecord, records: Sequence[EpisodeRecord]) -> None: ...

    def paused(self) -> contextlib.AbstractContextManager[None]: ...  # while the operator is asked


class QuietView:
    def steps(self) -> Subscriber | None:
        return None

    def episode_start(self, index: int, total: int | None) -> None:
        pass

    def episode_end(self, record: EpisodeRecord, records: Sequence[EpisodeRecord]) -> None:
        pass

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield


Ask = Callable[[str, EpisodeResult], "bool | None"]


@dataclass
class AgentSession:
    """Opens the robot, the policy and the syncer on ``__enter__``; ``run()`` runs the episodes."""

    config: SessionConfig
    stop_event: threading.Event = field(default_factory=threading.Event)
    ask: Ask | None = None  # the operator's verdict (label "ask"); None leaves it unknown
    robot: Any = None
    task: str = ""  # the task's name as recorded (a sim task's resolved name)
    store: Any = None
    syncer: Any = None
    slot: Any = None
    missed_deadlines: int = 0
    last_episode: str | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> AgentSession:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- opening --------------------------------------------------------------------------------------
    def _open(self) -> None:
        cfg = self.config
        self.robot, self.task = make_session_robot(cfg)
        self._stack.callback(self.robot.disconnect)
        if cfg.policy_spec in ("server", "remote") and not cfg.server:
            raise SessionError(f"{cfg.policy_spec!r} needs --server URL", option="--policy")
        if cfg.store is not None:
            from data_store.episodes import EpisodeStore

            self.store = EpisodeStore(cfg.store)
        if cfg.server:
            self.syncer = self._make_syncer()
        policy, version = self._first_policy()
        # torch is loaded by now where a local policy runs; restored when the session closes
        self._stack.enter_context(threads_bounded(cfg.threads, import_torch=False))
        from robot_agent.slot import PolicySlot

        self.slot = PolicySlot(policy, version)
        close = getattr(policy, "close", None)  # a remote policy's socket
        if close is not None:
            self._stack.callback(close)
        if self.syncer is not None:
            self.syncer.attach(self.slot)
            self.syncer.start()
            self._stack.callback(self._stop_syncer)
        self.robot.connect()

    def _make_syncer(self) -> Any:
        from robot_agent.sync import PolicySyncer, SyncConfig

        cfg = self.config
        assert cfg.server is not None
        sync = SyncConfig(
            server=cfg.server,
            robot_id=cfg.robot_id,
            cache_dir=cfg.cache,
            token=cfg.token,
            poll_s=cfg.poll_s,
            boundary=cfg.swap_at,
            follow=cfg.policy_spec != "remote",
        )
        return PolicySyncer(
            None,
            self.robot.spec,
            sync,
            health=lambda: {"ok": True, "missed_deadlines": self.missed_deadlines},
            last_episode=lambda: self.last_episode,
            stop_event=self.stop_event,
        )

    def _first_policy(self) -> tuple[Any, str]:
        cfg = self.config
        spec = cfg.policy_spec
        try:
            if spec == "remote":
                return self._connect_remote()
            if spec == "server":
                from robot_agent.sync import AccessDenied

                try:
                    return self.syncer.bootstrap(cfg.bootstrap_timeout_s)  # type: ignore[no-any-return]
                except AccessDenied as e:
                    raise SessionError(str(e), option="--token") from None
            from robot_agent.policies import load_policy

            policy = load_policy(spec, robot=self.robot, store=self.store, noise=cfg.noise, seed=cfg.seed)
        except ValueError as e:
            raise SessionError(str(e), option="--policy") from None
        except TimeoutError as e:
            raise SessionError(f"no policy to run: {e}") from None
        if self.syncer is not None:
            with contextlib.suppress(Exception):  # the server may be down: the robot runs what it has
                self.syncer.register()
        return policy, str(getattr(policy, "version", spec))

    def _connect_remote(self) -> tuple[Any, str]:
        """Register, then open the inference socket (retrying while nothing is rolled out or the server is down)."""
        import httpx

        from robot_agent.remote import RemoteError, RemotePolicy

        cfg, syncer = self.config, self.syncer
        assert cfg.server is not None
        deadline = time.monotonic() + cfg.bootstrap_timeout_s
        while True:
            try:
                syncer.register()
                policy = RemotePolicy(cfg.server, cfg.robot_id, token=cfg.token, timeout_s=syncer.config.timeout_s)
                return policy, policy.version
            except (httpx.HTTPError, RemoteError, OSError) as e:
                syncer.status.last_error = f"remote inference not ready: {e}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {cfg.bootstrap_timeout_s} s: {syncer.status.last_error}")
            if self.stop_event.wait(cfg.poll_s):
                raise TimeoutError("stopped before the server served a policy")

    def _stop_syncer(self) -> None:
        self.syncer.poke()  # send the last episode reports before stopping
        time.sleep(min(0.5, self.config.poll_s))
        self.syncer.stop()

    # -- running --------------------------------------------------------------------------------------
    @property
    def label(self) -> Literal["ask", "sim", "none"]:
        if self.config.label != "auto":
            return self.config.label
        from robot_agent.robots.base import Robot

        can_tell = type(self.robot).success is not Robot.success  # the backend says whether the task is done
        return "sim" if can_tell else "ask"

    def run(self, view: View | None = None) -> Iterator[EpisodeRecord]:
        """Run the episodes one by one, yielding each as it ends; stops early on ``stop_event`` or an operator
        interrupt (the interrupted episode is kept, marked aborted). ``RobotFault`` ends the run: what was recorded
        is kept."""
        from robot_agent.loop import Runtime
        from robot_agent.safety import SafetyConfig

        cfg, view = self.config, view or QuietView()
        try:
            safety = SafetyConfig.preset(cfg.safety) if cfg.safety else None
        except ValueError as e:
            raise SessionError(str(e), option="--safety") from None
        runtime = Runtime(self.robot, self.slot, safety=safety, stop_event=self.stop_event, temperature=cfg.temperature)
        records: list[EpisodeRecord] = []
        i = 0
        while (cfg.episodes is None or i < cfg.episodes) and not self.stop_event.is_set():
            view.episode_start(i, cfg.episodes)
            record = self._episode(runtime, cfg.seed + i, view)
            records.append(record)
            view.episode_end(record, records)
            yield record
            i += 1
            if record.result.reason == "operator interrupt" or self.stop_event.is_set():
                break

    def _episode(self, runtime: Any, seed: int, view: View) -> EpisodeRecord:
        cfg = self.config
        instruction = episode_instruction(self.robot, self.task, seed)
        subscribers: list[Subscriber] = []
        episode_id = uuid.uuid4().hex
        writer = None
        if self.store is not None:
            from robot_agent.recorder import Recorder

            writer = self.store.create(
                self.robot.spec,
                task=self.task,
                instruction=instruction,
                robot_id=cfg.robot_id,
                policy_version=self.slot.version,
                meta={"seed": seed, "policy": cfg.policy_spec, "noise": cfg.noise, "temperature": cfg.temperature},
                buffer_s=cfg.buffer_s,
            )
            episode_id = writer.episode_id
            subscribers.append(Recorder(writer, record_success=self.label == "sim"))
        steps = view.steps()
        if steps is not None:
            subscribers.append(steps)
        try:
            result = runtime.run_episode(max_steps=cfg.max_steps, seed=seed, subscribers=subscribers)
        except EpisodeInterrupted as e:
            result = e.result
        self.missed_deadlines += result.missed_deadlines
        success = self._final_success(episode_id, result, view)
        if result.steps:
            self.last_episode = episode_id
            if self.syncer is not None:
                self.syncer.report_episode(
                    episode_id,
                    version=self._ran(result),
                    task=self.task,
                    success=None if success == "unknown" else success == "true",
                    length=result.steps,
                    reason=result.reason,
                )
        if self.syncer is not None:
            self.syncer.at_episode_boundary()
        return EpisodeRecord(seed, result, episode_id, success)

    def _final_success(self, episode_id: str, result: EpisodeResult, view: View) -> Literal["true", "false", "unknown"]:
        """The operator's verdict (asked), the robot's (sim) or none; where the episode is recorded, its label in
        the store is the answer."""
        verdict: bool | None = None
        if self.label == "ask" and result.status == "complete" and self.ask is not None:
            with view.paused():
                verdict = self.ask(episode_id, result)
            if verdict is not None and self.store is not None:
                self.store.label(episode_id, verdict)
        elif self.label == "sim":
            verdict = result.success
        if self.store is not None and result.episode_id is not None:
            verdict = {"true": True, "false": False}.get(str(self.store.info(result.episode_id).success))
        return "unknown" if verdict is None else ("true" if verdict else "false")

    def _ran(self, result: EpisodeResult) -> str:
        """The version that ran last in this episode (with remote inference: the one that made the last chunk)."""
        if self.config.policy_spec == "remote":
            return str(self.syncer.running_version() or self.slot.version)
        return (result.versions or (self.slot.version,))[-1]


def make_session_robot(cfg: SessionConfig) -> tuple[Any, str]:
    """The configured robot backend, not yet connected, and the task's name as it is recorded. ``SessionError`` for
    a task, an option or a library that is missing."""
    from data_store.optional import MissingDependency
    from robot_agent.robots.base import make_robot

    kwargs: dict[str, Any] = {}
    name = cfg.task
    if cfg.robot == "sim":
        from sim.tasks import resolve_task

        try:
            task = resolve_task(cfg.task)
        except ValueError as e:
            raise SessionError(str(e), option="--task") from None
        name = task.name
        kwargs = dict(task=task, camera=cfg.camera, image_size=(cfg.size, cfg.size), max_steps=cfg.max_steps)
        kwargs.update(seed=cfg.seed, realtime=cfg.realtime)
    elif cfg.robot == "dds":
        kwargs = {"connect_timeout_s": cfg.connect_timeout}  # the domain: ROS_DOMAIN_ID, as in ROS 2
    try:
        return make_robot(cfg.robot, **kwargs), name
    except (MissingDependency, ValueError) as e:
        raise SessionError(str(e)) from None


def episode_instruction(robot: Any, task: str, seed: int) -> str:
    """The sim arm's phrasing for this seed (fixed on the robot so the recording names it), else the task."""
    info = getattr(robot, "task", None)
    if info is not None and hasattr(info, "instruction_for"):
        text = str(info.instruction_for(seed))
        robot.instruction = text
        return text
    return str(getattr(robot, "instruction", "") or task)
