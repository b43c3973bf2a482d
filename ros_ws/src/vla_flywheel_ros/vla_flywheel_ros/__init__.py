"""vla-flywheel robot agent as a ROS 2 (rclpy) lifecycle node."""
