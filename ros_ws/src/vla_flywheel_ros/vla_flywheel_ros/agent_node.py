"""The robot agent as an rclpy lifecycle node.

States (ROS 2 managed node):

- ``configure``: read parameters (``params.from_parameters``), open the episode store, load the policy,
  create subscriptions (``/joint_states``, color and depth ``sensor_msgs/Image``, or a RealSense read
  in-process), the command publisher (JointTrajectory or Float64MultiArray), the ``~/run_task`` action
  server (``vla_flywheel_interfaces/action/RunTask``) and the ``~/estop`` and ``~/reset`` services
  (``std_srvs/Trigger``);
- ``activate``: wait for the arm's topics, then accept goals;
- ``deactivate``: cancel a running episode (the arm holds);
- ``cleanup`` / ``shutdown``: drive home (when the limits say so) and release everything.

Everything the arm does (mapping, safety filter, pacing, homing, e-stop latch) is ``TopicArm``'s, the
same class the DDS backend runs in CI against the fake driver; this file is the rclpy transport and the
ROS 2 faces (action, services, lifecycle). Runs under a MultiThreadedExecutor: subscriptions keep
arriving while an episode runs in the action's execute callback.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from vla_flywheel_interfaces.action import RunTask

from robot_agent import ros_mapping
from robot_agent.robots.dds import RobotFault, Stream, TopicArm
from vla_flywheel_ros.params import DEFAULTS, NODE_NAME, AgentParams, from_parameters

ROS_OWN = {"use_sim_time", "start_type_description_service"}  # parameters every rclpy node declares itself


class EpisodeCanceled(RuntimeError):
    """Raised inside the control loop when the goal is canceled or the e-stop is pressed."""


class RclpyArm(TopicArm):
    """``TopicArm`` over rclpy subscriptions and publishers of ``node``."""

    def __init__(self, node: LifecycleNode, params: AgentParams) -> None:
        super().__init__(params.arm, limits=params.limits)
        self._node = node
        self._params = params
        self._msgs: dict[Stream, tuple[Any, float]] = {}
        self._handles: list[Any] = []
        self._camera: Any = None
        self.cancel = threading.Event()

    def _keep(self, stream: Stream) -> Any:
        def callback(msg: Any) -> None:
            self._msgs[stream] = (msg, time.monotonic())  # one assignment: atomic under the GIL

        return callback

    def _transport_open(self) -> None:
        node, c, group = self._node, self.config, ReentrantCallbackGroup()
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._handles = [
            node.create_subscription(JointState, c.topics.joint_states, self._keep("joints"), 10, callback_group=group),
            # the driver's JSON status (the fake driver's task verdict); an arm without one leaves success unknown
            node.create_subscription(
                String, c.topics.driver_status, self._keep("status"), latched, callback_group=group
            ),
        ]
        if self._params.camera_source == "realsense":
            from robot_agent.cameras.realsense import RealSenseCamera, RealSenseConfig

            h, w = c.image_size
            self._camera = RealSenseCamera(
                RealSenseConfig(
                    name=c.camera,
                    serial=self._params.realsense_serial or None,
                    width=w,
                    height=h,
                    fps=self._params.camera_fps,
                    depth=c.depth,
                )
            )
            self._camera.connect()
        else:
            sensor = qos_profile_sensor_data
            self._handles.append(
                node.create_subscription(Image, c.topics.color, self._keep("color"), sensor, callback_group=group)
            )
            if c.depth:
                self._handles.append(
                    node.create_subscription(Image, c.topics.depth, self._keep("depth"), sensor, callback_group=group)
                )
        kind_type = JointTrajectory if c.command_kind == "trajectory" else Float64MultiArray
        self._command_pub = node.create_publisher(kind_type, c.topics.command(c.command_kind), QoSProfile(depth=10))
        self._estop_pub = node.create_publisher(Bool, c.topics.estop, QoSProfile(depth=10))

    def _latest(self, stream: Stream) -> tuple[Any, float]:
        # With an in-process RealSense, one camera read per observation: color first, depth from that frame.
        if self._camera is not None and stream == "color":
            frame = self._camera.read(timeout_s=1.0)
            now = time.monotonic()
            fields = ros_mapping.rgb_to_image_fields(frame.color, frame.timestamp)
            self._msgs["color"] = (ros_mapping.build(Image, fields), now)
            if frame.depth is not None:
                fields = ros_mapping.depth_to_image_fields(frame.depth, frame.timestamp)
                self._msgs["depth"] = (ros_mapping.build(Image, fields), now)
        return self._msgs.get(stream, (None, 0.0))

    def _where(self) -> str:
        return f" (ROS domain {self._node.context.get_domain_id()})"

    def _publish_command(self, fields: dict[str, Any]) -> None:
        cls = JointTrajectory if self.config.command_kind == "trajectory" else Float64MultiArray
        self._command_pub.publish(ros_mapping.build(cls, fields))

    def _publish_estop(self, engaged: bool) -> None:
        self._estop_pub.publish(Bool(data=engaged))

    def send_action(self, action: Any) -> None:
        if self.cancel.is_set():
            raise EpisodeCanceled("estop" if self.safety.estopped else "canceled")
        super().send_action(action)

    def _transport_close(self) -> None:
        for handle in self._handles:
            self._node.destroy_subscription(handle)
        self._handles = []
        self._node.destroy_publisher(self._command_pub)
        self._node.destroy_publisher(self._estop_pub)
        if self._camera is not None:
            self._camera.disconnect()
            self._camera = None


class AgentNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        # dynamic typing: a value of the wrong type is refused at configure, with a message that names it
        # (params.from_parameters), rather than by an exception while the node is constructed
        for name, default in DEFAULTS.items():
            self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self.arm: RclpyArm | None = None
        self._busy = threading.Lock()
        self._active = False
        self._servers: list[Any] = []
        self.last_error = ""  # why the last transition failed, for a one-line error

    # ---- lifecycle -------------------------------------------------------------------------------
    def current_label(self) -> str:
        """The lifecycle state: unconfigured, inactive, active or finalized (what ``~/get_state`` answers)."""
        return str(self._state_machine.current_state[1])

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        from data_store.episodes import EpisodeStore
        from robot_agent.policies import load_policy
        from robot_agent.slot import PolicySlot

        try:
            # a misspelt name in a params file or -p would otherwise be dropped silently, and its default used
            given = {name: self.get_parameter(name).value for name in DEFAULTS}
            given |= {name: None for name in self._parameter_overrides if name not in DEFAULTS and name not in ROS_OWN}
            self.params = from_parameters(given)
            self.store = EpisodeStore(self.params.store)
            self.slot = PolicySlot(load_policy(self.params.policy), version=self.params.policy)
            self.arm = RclpyArm(self, self.params)
        except Exception as e:  # a bad parameter or policy: stay unconfigured, say why
            self.last_error = str(e)
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        group = MutuallyExclusiveCallbackGroup()
        self._servers = [
            ActionServer(
                self,
                RunTask,
                "~/run_task",
                execute_callback=self._execute,
                goal_callback=self._on_goal,
                cancel_callback=lambda _goal: CancelResponse.ACCEPT,
                callback_group=ReentrantCallbackGroup(),
            ),
            self.create_service(Trigger, "~/estop", self._on_estop, callback_group=group),
            self.create_service(Trigger, "~/reset", self._on_reset, callback_group=group),
        ]
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self.arm is not None
        try:
            self.arm.connect()
        except RobotFault as e:
            self.last_error = str(e)
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self.arm is not None:
            self.arm.cancel.set()
        with self._busy:  # wait for the running episode to stop
            pass
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self.arm is not None:
            self.arm.cancel.set()
        with self._busy:  # the running episode stops (recorded as aborted) before the arm goes home
            pass
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.arm is not None:
            self.arm.disconnect()  # goes home first when the limits say so
            self.arm = None
        for server in self._servers:
            server.destroy() if isinstance(server, ActionServer) else self.destroy_service(server)
        self._servers = []

    # ---- services --------------------------------------------------------------------------------
    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.arm is None:
            response.success, response.message = False, "not configured"
            return response
        self.arm.estop("service")
        self.arm.cancel.set()
        response.success, response.message = True, "e-stop latched; call ~/reset to release"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.arm is None:
            response.success, response.message = False, "not configured"
            return response
        if self._busy.locked():
            response.success, response.message = False, "an episode is still stopping"
            return response
        self.arm.reset_estop()
        self.arm.cancel.clear()
        response.success, response.message = True, "e-stop released"
        return response

    # ---- the task action -------------------------------------------------------------------------
    def _on_goal(self, goal: RunTask.Goal) -> GoalResponse:
        if not self._active or self.arm is None or self.arm.safety.estopped or self._busy.locked():
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> RunTask.Result:
        from robot_agent.loop import run_episode

        goal, arm, result = goal_handle.request, self.arm, RunTask.Result()
        assert arm is not None
        max_steps = goal.max_steps or self.params.default_max_steps
        start = time.monotonic()

        def feedback(step: int) -> None:
            if goal_handle.is_cancel_requested:
                arm.cancel.set()
            fb = RunTask.Feedback(step=step, max_steps=max_steps, elapsed_s=float(time.monotonic() - start))
            goal_handle.publish_feedback(fb)

        with self._busy:
            arm.cancel.clear()
            arm.instruction = goal.instruction
            arm.on_step = feedback
            writer = self.store.create(
                arm.spec,
                task=goal.task or self.params.task,
                instruction=goal.instruction,
                robot_id=self.params.robot_id,
                policy_version=self.slot.version,
            )
            try:
                episode = run_episode(arm, self.slot, max_steps=max_steps, writer=writer)
                result.success = bool(episode.success)
                result.outcome = {True: "success", False: "failure", None: "unknown"}[episode.success]
                result.steps, result.reason = episode.steps, episode.reason
                result.episode_id = episode.episode_id or writer.episode_id
            except (EpisodeCanceled, RobotFault) as e:
                if writer.info.status == "recording":
                    writer.abort(str(e))
                result.outcome, result.reason, result.steps = "aborted", str(e), arm.steps
                result.episode_id = writer.episode_id
            finally:
                arm.on_step = None
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.outcome == "aborted":
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return result


def main(args: list[str] | None = None) -> None:
    """Run the node until SIGINT or SIGTERM (``ros2 run``, the launch file, ``flywheel ros agent``).

    ``--activate`` (before ``--ros-args``): the node configures and activates itself from its parameters and
    prints one JSON line when it is active; a failed transition ends the process with one line on stderr and
    exit status 1. Without it, a lifecycle manager drives the transitions (the launch file, ``ros2 lifecycle``,
    the ``~/change_state`` service). On SIGINT or SIGTERM the node takes the shutdown transition (a running
    episode is cancelled and kept as aborted; the arm goes home when the limits say so), then the process ends.
    """
    argv = list(sys.argv[1:] if args is None else args)
    ros_at = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    activate = "--activate" in argv[:ros_at]
    argv = [a for a in argv[:ros_at] if a != "--activate"] + argv[ros_at:]
    # our own handlers: the shutdown transition needs the executor still spinning (homing reads joint states)
    rclpy.init(args=[sys.argv[0], *argv], signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = AgentNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name="executor", daemon=True)
    spinner.start()
    code = 0
    try:
        if activate:
            code = _configure_and_activate(node)
        if code == 0:
            stop.wait()
    finally:
        try:
            if node.current_label() != "finalized":
                node.trigger_shutdown()
        finally:
            executor.shutdown(timeout_sec=5.0)
            spinner.join(timeout=5.0)
            node.destroy_node()
            rclpy.try_shutdown()
    sys.exit(code)


def _configure_and_activate(node: AgentNode) -> int:
    for name, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            print(f"error: {name} failed: {node.last_error or 'see the node log'}", file=sys.stderr, flush=True)
            return 1
    ready = {"agent": "active", "node": node.get_fully_qualified_name(), "domain_id": node.context.get_domain_id()}
    print(json.dumps(ready), flush=True)
    return 0


if __name__ == "__main__":
    main()
