"""``flywheel ros``: the ROS 2 agent node, on a machine with or without a ROS 2 install.

``flywheel ros agent`` starts the rclpy lifecycle node (``ros_ws/src/vla_flywheel_ros``) and drives it to
active from its parameters, which is what ``ros2 launch vla_flywheel_ros agent.launch.py`` does on a ROS
install. rclpy comes from the interpreter that has it: this one when a ROS 2 install is sourced and the
workspace built (``colcon build``), else ``.venv-ros`` (``bash scripts/setup_ros.sh``: Jazzy from wheels).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP = "bash scripts/setup_ros.sh (ROS 2 Jazzy from wheels, no ROS install), or source a ROS 2 install (docs/ros.md)"

app = typer.Typer(no_args_is_help=True, add_completion=False)


def ros_python(explicit: Path | None = None) -> Path:
    """The interpreter that imports rclpy and the node: ``explicit``, this one, or ``.venv-ros``'s."""
    if explicit is not None:
        if not explicit.is_file():
            raise typer.BadParameter(f"{explicit} does not exist", param_hint="--ros-python")
        return explicit
    here = all(
        importlib.util.find_spec(m) is not None for m in ("rclpy", "vla_flywheel_ros", "vla_flywheel_interfaces")
    )
    if here:
        return Path(sys.executable)
    venv = ROOT / ".venv-ros" / "bin" / "python"
    if venv.is_file():
        return venv
    raise typer.BadParameter(f"no Python with rclpy found; set one up: {SETUP}", param_hint="--ros-python")


def _check_params_file(path: Path) -> None:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise typer.BadParameter(f"{path}: {e}", param_hint="--params-file") from None
    if not isinstance(doc, dict) or not any(
        isinstance(v, dict) and "ros__parameters" in v for v in doc.values()
    ):  # rcl refuses such a file with a parser error; say what it wants
        raise typer.BadParameter(
            f"{path}: expected a ROS 2 params file ('/**:' or the node's name, then 'ros__parameters:')",
            param_hint="--params-file",
        )


@app.command("agent")
def agent(
    params_file: Path | None = typer.Option(
        None, "--params-file", dir_okay=False, help="ROS 2 params file (ros_ws/src/vla_flywheel_ros/config/agent.yaml)."
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="NAME:=VALUE, one parameter (as ros2 run's -p); wins over the params file."
    ),
    domain_id: int | None = typer.Option(
        None, "--domain-id", min=0, max=232, help="ROS_DOMAIN_ID (default: the environment's, else 0)."
    ),
    python: Path | None = typer.Option(
        None, "--ros-python", envvar="FLYWHEEL_ROS_PYTHON", help="Python with rclpy (default: found, see above)."
    ),
) -> None:
    """Start the ROS 2 agent node and make it active: it takes RunTask goals on ~/run_task until Ctrl-C.

    Prints one JSON line when active. A bad parameter or an arm that does not answer ends it with one line
    and exit status 1. Ctrl-C or SIGTERM: the running episode is cancelled (kept as aborted), the arm goes
    home when the limits say so, and the node shuts down.
    """
    ros_args: list[str] = []
    if params_file is not None:
        if not params_file.is_file():
            raise typer.BadParameter(f"{params_file} does not exist", param_hint="--params-file")
        _check_params_file(params_file)
        ros_args += ["--params-file", str(params_file.resolve())]
    for p in param:
        if ":=" not in p or not p.split(":=", 1)[0]:
            raise typer.BadParameter(f"expected NAME:=VALUE, got {p!r}", param_hint="--param")
        ros_args += ["-p", p]
    exe = ros_python(python)
    args = [str(exe), "-m", "vla_flywheel_ros.agent_node", "--activate", "--ros-args", *ros_args]
    env = dict(os.environ)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    sys.stdout.flush()
    os.execve(exe, args, env)  # the node gets the signals (Ctrl-C, SIGTERM) itself
