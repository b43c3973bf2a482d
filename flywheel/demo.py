"""``flywheel demo``: the whole loop on one machine (grows with each stage of the project)."""

from __future__ import annotations


def run_demo(out: str, task: str, episodes: int) -> None:
    raise NotImplementedError("the demo is assembled once the robot agent and the store land")
