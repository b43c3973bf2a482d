"""Transports that carry the agent's observations and commands: ROS 2 topics on the DDS wire (``dds``)
and the fake arm driver that speaks them (``fake_driver``)."""
