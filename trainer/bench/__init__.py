"""Benchmarks and measurements of the trainer: they run the cycle's code and report figures.

- ``paper.py``, ``paper_report.py``: ``flywheel bench paper``, WMPO's table on the simulated arm, and its report;
- ``lifelong.py``: ``flywheel bench lifelong``, the flywheel over several nights;
- ``cost.py``: ``flywheel bench rl-cost``, what imagined RL costs in time and memory;
- ``base_table.py``: ``flywheel bench base-policy``, the base policy's success against demonstrations per task;
- ``imagination_quality.py``: how far imagination can be trusted: replay quality per horizon and success agreement
  (``flywheel train world-model`` and ``train reward-model --world-model`` print them);
- ``world_model.py``: ``flywheel bench world-model``, world-model speed next to the simulator's;
- ``service.py``: ``flywheel bench service``, a Celery task's round trip on each broker.

Only the commands (``trainer/cli/``), ``benchmarks/`` and tests import these. The algorithms they measure live one
level up (``trainer/cycle.py`` and what it calls): a function the cycle needs does not belong here.
"""
