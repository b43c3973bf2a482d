"""The ROS 2 package's pure-Python parts, on a machine without ROS 2: parameters, the params file, the
launch file, package manifests and the action definition."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robot_agent.ros_mapping import ArmTopics
from robot_agent.transports.kinematic_arm import PlanarArm

ROOT = Path(__file__).resolve().parents[3]
PKG = ROOT / "ros_ws" / "src" / "vla_flywheel_ros"
IFACES = ROOT / "ros_ws" / "src" / "vla_flywheel_interfaces"
sys.path.insert(0, str(PKG))

from vla_flywheel_ros import params as P  # noqa: E402


def test_shipped_params_file_parses_and_matches_the_fake_driver() -> None:
    p = P.from_ros_yaml(PKG / "config" / "agent.yaml")
    arm = PlanarArm()
    assert p.arm.joint_names == arm.joint_names
    assert p.arm.topics == ArmTopics()  # the same topics the fake driver speaks
    assert p.arm.command_kind == "trajectory" and p.arm.image_size == (64, 64) and p.arm.depth
    assert p.limits.home == arm.home
    assert all(lo >= a for lo, a in zip(p.limits.position_min, arm.position_min, strict=True))
    assert all(v <= a for v, a in zip(p.limits.max_velocity, arm.max_velocity, strict=True))  # under the driver's


def test_node_section_overrides_the_wildcard(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "/**:\n  ros__parameters:\n    fps: 5.0\n    command_kind: trajectory\n"
        f"{P.NODE_NAME}:\n  ros__parameters:\n    command_kind: array\n    camera:\n      source: realsense\n"
    )
    p = P.from_ros_yaml(tmp_path / "p.yaml")
    assert (p.arm.fps, p.arm.command_kind, p.camera_source) == (5.0, "array", "realsense")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fps": "fast"}, "parameter fps"),
        ({"joint_names": [1, 2]}, "parameter joint_names"),
        ({"camera.depth": 1}, "parameter camera.depth"),
        ({"command_kind": "velocity"}, "command_kind"),
        ({"camera.source": "usb"}, "camera.source"),
        ({"speed": 3}, "unknown parameters: speed"),
        ({"joint_names": ["a", "b", "c", "d"]}, "hardware_limits.joint_names"),
        ({"hardware_limits.home": [9.0, 0.0, 0.0, 0.0]}, "outside the joint position limits"),
    ],
)
def test_bad_parameters_name_themselves(values: dict, message: str) -> None:
    with pytest.raises(P.ParamError, match=message):
        P.from_parameters(values)


def test_every_parameter_has_a_ros_type() -> None:
    # rclpy infers a parameter's type from its default: no None, no empty list, no mixed lists.
    for name, default in P.DEFAULTS.items():
        assert default is not None, name
        if isinstance(default, list):
            assert default and len({type(v) for v in default}) == 1, name


def test_launch_file_is_valid_python_and_names_the_node() -> None:
    source = (PKG / "launch" / "agent.launch.py").read_text()
    tree = ast.parse(source)
    compile(tree, "agent.launch.py", "exec")
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"vla_flywheel_ros", "agent_node", P.NODE_NAME, "params_file"} <= strings
    assert "agent_node = vla_flywheel_ros.agent_node:main" in (PKG / "setup.py").read_text()


def test_node_module_defines_the_lifecycle_callbacks() -> None:
    tree = ast.parse((PKG / "vla_flywheel_ros" / "agent_node.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    methods = {f.name for f in classes["AgentNode"].body if isinstance(f, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown"} <= methods
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def test_package_manifests() -> None:
    ros = ET.parse(PKG / "package.xml").getroot()
    assert ros.findtext("name") == "vla_flywheel_ros"
    assert ros.find("export/build_type").text == "ament_python"  # type: ignore[union-attr]
    deps = {e.text for e in ros if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "trajectory_msgs", "std_msgs", "std_srvs", "vla_flywheel_interfaces"} <= deps
    assert (PKG / "resource" / "vla_flywheel_ros").exists()
    ifaces = ET.parse(IFACES / "package.xml").getroot()
    assert ifaces.findtext("name") == "vla_flywheel_interfaces"
    assert ifaces.findtext("member_of_group") == "rosidl_interface_packages"
    assert "action/RunTask.action" in (IFACES / "CMakeLists.txt").read_text()


def test_run_task_action_has_goal_result_and_feedback() -> None:
    text = (IFACES / "action" / "RunTask.action").read_text()
    sections = [
        [line.split("#")[0].split() for line in part.splitlines() if line.split("#")[0].strip()]
        for part in text.split("---")
    ]
    assert len(sections) == 3
    goal, result, feedback = ({name: typ for typ, name in fields} for fields in sections)
    assert goal == {"instruction": "string", "task": "string", "max_steps": "int32"}
    assert {"outcome", "success", "steps", "reason", "episode_id"} <= set(result)
    assert feedback["step"] == "int32"


def test_flywheel_ros_agent_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    """Checked before any ROS process starts (the node's own checks run in tests/ros)."""
    from typer.testing import CliRunner

    from flywheel.cli import app

    (tmp_path / "plain.yaml").write_text("fps: 5\n")
    cases = [
        (["--params-file", str(tmp_path / "missing.yaml")], "does not exist"),
        (["--params-file", str(tmp_path / "plain.yaml")], "expected a ROS 2 params file"),
        (["-p", "fps=5"], "expected NAME:=VALUE"),
        (["--ros-python", str(tmp_path / "no-python")], "does not exist"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, ["ros", "agent", *args])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output
