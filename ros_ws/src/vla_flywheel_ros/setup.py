"""ament_python package: the robot agent as an rclpy lifecycle node (vla-flywheel itself is pip-installed)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "vla_flywheel_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vla-flywheel maintainers",
    maintainer_email="maintainers@vla-flywheel.invalid",
    description="rclpy lifecycle node wrapping the vla-flywheel robot agent",
    license="Apache-2.0",
    entry_points={"console_scripts": ["agent_node = vla_flywheel_ros.agent_node:main"]},
)
