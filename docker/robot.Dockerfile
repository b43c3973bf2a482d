# The robot agent on ROS 2 Jazzy: the rclpy node (ros_ws, built with colcon), the DDS backend, the
# simulated arm, RealSense. Ubuntu 24.04, Python 3.12 (so lerobot installs too: EXTRAS=...,lerobot).
#   docker build -f docker/robot.Dockerfile -t vla-flywheel/robot .
FROM ros:jazzy-ros-base AS robot

ARG EXTRAS=robot,ros,realsense
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FLYWHEEL_DATA_DIR=/data HF_HUB_OFFLINE=1 MUJOCO_GL=egl \
    RMW_IMPLEMENTATION=rmw_cyclonedds_cpp ROS_DISTRO=jazzy
WORKDIR /app

# rmw_cyclonedds_cpp: the same DDS as the agent's own transport. libusb for RealSense, EGL for MuJoCo.
RUN apt-get update && apt-get install -y --no-install-recommends \
        ros-jazzy-rmw-cyclonedds-cpp python3-venv python3-pip python3-colcon-common-extensions \
        libusb-1.0-0 libegl-mesa0 libgl1-mesa-dri libglx-mesa0 \
    && rm -rf /var/lib/apt/lists/*

# A venv that also sees the system site-packages, so rclpy (from /opt/ros) imports next to our packages.
RUN python3 -m venv --system-site-packages /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv

COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p data_store vla sim robot_agent trainer serving flywheel \
    && pip install -c constraints.txt ".[${EXTRAS}]" && pip uninstall -y vla-flywheel
COPY data_store data_store
COPY vla vla
COPY sim sim
COPY robot_agent robot_agent
COPY trainer trainer
COPY serving serving
COPY flywheel flywheel
RUN pip install --no-deps -c constraints.txt .

# The ROS 2 workspace: the interface package (RunTask.action) and the agent node. colcon runs under the
# venv's python so the node's entry-point script starts that python (which sees rclpy and our packages).
COPY ros_ws/src /ws/src
RUN . /opt/ros/jazzy/setup.sh && cd /ws && python -m colcon build --event-handlers console_direct- \
    && rm -rf /ws/build /ws/log

COPY docker/robot-entrypoint.sh /usr/local/bin/robot-entrypoint.sh
RUN useradd --create-home --uid 1000 flywheel && mkdir -p /data && chown flywheel /data
USER flywheel
VOLUME ["/data"]

ENTRYPOINT ["/usr/local/bin/robot-entrypoint.sh"]
# The simulated arm with the scripted expert; for the ROS 2 node instead:
#   docker run ... vla-flywheel/robot ros2 launch vla_flywheel_ros agent.launch.py
CMD ["flywheel", "robot", "run", "--robot", "sim", "--task", "drawer-close", "--policy", "scripted", "--store", "/data/episodes"]
