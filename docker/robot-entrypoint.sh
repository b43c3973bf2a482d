#!/bin/bash
# Source ROS 2 Jazzy and the agent's workspace, then run the command (flywheel ..., ros2 launch ...).
set -e
source /opt/ros/jazzy/setup.bash
source /ws/install/setup.bash
exec "$@"
