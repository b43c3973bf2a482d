"""ROS 2 for real: rclpy (Jazzy, Fast DDS) in this process, the agent node and the fake arm driver
(cyclonedds) as processes, over loopback DDS, one ROS domain per test.

These tests run under ``.venv-ros/bin/python`` (``bash scripts/setup_ros.sh``; ``scripts/test.sh`` does both).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import rclpy
except ImportError:  # pragma: no cover - the run was started with the wrong interpreter
    raise pytest.UsageError(
        "tests/ros need rclpy: run them with .venv-ros/bin/python -m pytest tests/ros "
        "(bash scripts/setup_ros.sh sets it up; bash scripts/test.sh runs them)"
    ) from None

from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

ROOT = Path(__file__).resolve().parents[2]
NODE = "vla_flywheel_agent"
# One ROS domain per test, a band per pid (concurrent runs on one machine stay apart); Fast DDS allows <= 232.
_DOMAINS = itertools.count(25 + (os.getpid() % 10) * 20)
# The loaded test machine may starve a process for a while: joint states older than this are a fault.
LENIENT = ["-p", "state_timeout_s:=2.0", "-p", "connect_timeout_s:=20.0"]


def loopback_env(domain: int) -> dict[str, str]:
    """Discovery on loopback only: Fast DDS (rclpy) by ROS_AUTOMATIC_DISCOVERY_RANGE, Cyclone by its URI."""
    cyclone = (
        '<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
        '<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address="127.0.0.1"/></Peers>'
        "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>60</MaxAutoParticipantIndex>"
        "</Discovery></Domain></CycloneDDS>"
    )
    return {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "CYCLONEDDS_URI": cyclone,
        "PYTHONUNBUFFERED": "1",
    }


def main_python() -> str:
    """The project's own interpreter (no rclpy): the fake driver and the Cyclone peer run there."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


class Proc:
    """A child process whose first stdout line says it is ready; its output is kept for assertions."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str | None, timeout_s: float = 60.0) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()
        if ready is not None:
            self.wait_line(ready, timeout_s)

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not any(text in line for line in self.lines):
                time.sleep(0.2)  # let the readers drain
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.argv[2:4]}: no {text!r} within {timeout_s} s; {self.output()[-3000:]}")

    def output(self) -> str:
        return "\n".join(self.lines + self.err)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


class Ros:
    """rclpy in the test process, on the test's domain: lifecycle calls, the task action, topics."""

    def __init__(self, domain: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node("test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, future: Any, timeout_s: float = 60.0) -> Any:
        self.executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        assert future.done(), f"no answer within {timeout_s} s"
        return future.result()

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def spin_while(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 60.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"service {name} did not appear"
            return self.spin_until(client.call_async(request), timeout_s)
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Agent:
    """The node process and the calls that manage it."""

    def __init__(self, ros: Ros, proc: Proc) -> None:
        self.ros, self.proc = ros, proc
        from vla_flywheel_interfaces.action import RunTask

        self.action = ActionClient(ros.node, RunTask, f"/{NODE}/run_task")

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {
            "configure": Transition.TRANSITION_CONFIGURE,
            "activate": Transition.TRANSITION_ACTIVATE,
            "deactivate": Transition.TRANSITION_DEACTIVATE,
            "cleanup": Transition.TRANSITION_CLEANUP,
            "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
        }
        request = ChangeState.Request(transition=Transition(id=ids[label]))
        return bool(self.ros.call(ChangeState, f"/{NODE}/change_state", request).success)

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return str(self.ros.call(GetState, f"/{NODE}/get_state", GetState.Request()).current_state.label)

    def trigger(self, name: str) -> Any:
        from std_srvs.srv import Trigger

        return self.ros.call(Trigger, f"/{NODE}/{name}", Trigger.Request())

    def send_goal(self, max_steps: int, feedback: list[Any] | None = None, **goal: Any) -> Any:
        from vla_flywheel_interfaces.action import RunTask

        assert self.action.wait_for_server(timeout_sec=30), "the run_task action server did not appear"
        fields = {"instruction": "touch the block", "task": "touch-block", "max_steps": max_steps, **goal}
        on_feedback = (lambda m: feedback.append(m.feedback)) if feedback is not None else None
        return self.ros.spin_until(self.action.send_goal_async(RunTask.Goal(**fields), feedback_callback=on_feedback))

    def result(self, handle: Any, timeout_s: float = 120.0) -> Any:
        return self.ros.spin_until(handle.get_result_async(), timeout_s)


@pytest.fixture
def domain() -> int:
    return next(_DOMAINS)


@pytest.fixture
def ros(domain: int) -> Iterator[Ros]:
    r = Ros(domain)
    yield r
    r.close()


def start_driver(domain: int, *args: str) -> Proc:
    argv = [main_python(), "-m", "robot_agent.transports.fake_driver", "--domain-id", str(domain), *args]
    return Proc(argv, loopback_env(domain), ready='"ready"')


def start_node(domain: int, store: Path, *params: str, activate: bool = False) -> Proc:
    argv = [sys.executable, "-m", "vla_flywheel_ros.agent_node"] + (["--activate"] if activate else [])
    argv += ["--ros-args", "-p", f"store:={store}", *LENIENT, *params]
    return Proc(argv, loopback_env(domain), ready='"active"' if activate else None)


def driver_status(ros: Ros, timeout_s: float = 10.0) -> dict[str, Any]:
    """The fake driver's newest ``/driver_status`` (std_msgs/String JSON, latched)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    got: list[str] = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = ros.node.create_subscription(String, "/driver_status", lambda m: got.append(m.data), qos)
    try:
        ros.spin_while(lambda: not got, timeout_s, "/driver_status")
        ros.spin_for(0.3)  # a fresher one
        return dict(json.loads(got[-1]))
    finally:
        ros.node.destroy_subscription(sub)


def pytest_configure(config: pytest.Config) -> None:
    # rosidl's parser (lark 0.12, pinned by the Jazzy wheels) imports modules Python 3.11 deprecates
    config.addinivalue_line("filterwarnings", "ignore:module 'sre_:DeprecationWarning")
