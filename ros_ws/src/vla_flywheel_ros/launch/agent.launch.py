"""Launch the vla-flywheel agent as a lifecycle node, configure and activate it.

ros2 launch vla_flywheel_ros agent.launch.py params_file:=/path/to/agent.yaml autostart:=true
"""

import os

import launch
import launch.actions
import launch.conditions
import launch.events
import launch.substitutions
import launch_ros.actions
import launch_ros.event_handlers
import launch_ros.events.lifecycle
from ament_index_python.packages import get_package_share_directory
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> launch.LaunchDescription:
    default_params = os.path.join(get_package_share_directory("vla_flywheel_ros"), "config", "agent.yaml")
    params_file = launch.substitutions.LaunchConfiguration("params_file")
    autostart = launch.substitutions.LaunchConfiguration("autostart")

    node = launch_ros.actions.LifecycleNode(
        package="vla_flywheel_ros",
        executable="agent_node",
        name="vla_flywheel_agent",
        namespace="",
        output="screen",
        parameters=[params_file],
    )
    configure = launch.actions.EmitEvent(
        event=launch_ros.events.lifecycle.ChangeState(
            lifecycle_node_matcher=launch.events.matches_action(node),
            transition_id=Transition.TRANSITION_CONFIGURE,
        ),
        condition=launch.conditions.IfCondition(autostart),
    )
    activate = launch.actions.RegisterEventHandler(
        launch_ros.event_handlers.OnStateTransition(
            target_lifecycle_node=node,
            goal_state="inactive",
            entities=[
                launch.actions.EmitEvent(
                    event=launch_ros.events.lifecycle.ChangeState(
                        lifecycle_node_matcher=launch.events.matches_action(node),
                        transition_id=Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
        ),
        condition=launch.conditions.IfCondition(autostart),
    )
    return launch.LaunchDescription(
        [
            launch.actions.DeclareLaunchArgument("params_file", default_value=default_params),
            launch.actions.DeclareLaunchArgument("autostart", default_value="true"),
            node,
            activate,
            configure,
        ]
    )
