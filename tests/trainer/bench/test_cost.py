"""``flywheel bench rl-cost``'s split of one imagined GRPO iteration, with tiny models: every part is timed, the parts
add up to the draw, and the simulator's own frame rate sits beside the imagined one."""

from __future__ import annotations

from trainer.bench.cost import PARTS, CostPoint, breakdown


def test_one_iteration_is_split_by_part_and_sits_beside_the_simulator() -> None:
    split = breakdown(CostPoint(2, 1, 16), "tiny", "tiny", sim_seconds=0.1)
    for part in PARTS:
        assert split[part] > 0, (part, split)  # every model was called, through its timer
    assert split["other"] >= 0 and abs(sum(split[p] for p in PARTS) + split["other"] - split["draw"]) < 1e-9
    assert split["update"] > 0
    assert split["imagined_frames_per_s"] == 2 * 1 * 16 / split["draw"]
    assert split["sim_frames_per_s"] > 0
