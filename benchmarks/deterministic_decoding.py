"""Which deterministic action should a robot run? Policies on seeded scenes of the simulated arm, each decoded
several ways at temperature 0: the argmax of every action token, the mean bin, the median bin and the smoothed mode
(the argmax of the distribution convolved with a Gaussian of ``SMOOTH_SIGMA`` bins). Prints JSON lines with every
scene's outcome.

    python benchmarks/deterministic_decoding.py --task drawer-close base=flywheel_data/demo/policies/base \\
        candidate=flywheel_data/demo/work/<key>/grpo/out/policy

Scenes default to the cycle's validation scenes (``trainer.recipe.VALIDATION_SEED``, the judge's), with the robot's
safety filter as the cycle applies it.
"""

from __future__ import annotations

import argparse
import json
import time
import types
from typing import Any

DECODERS = ("argmax", "mean", "median", "smooth")
SMOOTH_SIGMA = 2.0  # bins: "smooth" is the argmax of each token's distribution convolved with this Gaussian


def smoothed_mode(logits: Any, sigma: float = SMOOTH_SIGMA) -> Any:
    """The bin with the most probability mass around it: argmax of softmax(logits) convolved with a Gaussian."""
    import torch

    half = int(3 * sigma)
    kernel = torch.exp(-(torch.arange(-half, half + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    p = torch.softmax(logits.float(), dim=-1)
    flat = p.reshape(-1, 1, p.shape[-1])
    smooth = torch.nn.functional.conv1d(flat, (kernel / kernel.sum()).view(1, 1, -1), padding=half)
    return smooth.reshape(p.shape).argmax(dim=-1)


def decode_with(kind: str) -> Any:
    """A ``sample`` for a ``VLAPolicy`` that decodes deterministically by ``kind`` (whatever the temperature)."""
    import numpy as np
    import torch

    from vla.model import median_tokens, token_log_prob

    def sample(self: Any, batch: Any, temperature: float, generator: Any = None) -> Any:
        with torch.inference_mode():
            logits = self.logits(batch).float()
            n = logits.shape[-1]
            if kind == "argmax":
                index = logits.argmax(-1).float()
            elif kind == "median":
                index = median_tokens(logits).float()
            elif kind == "smooth":
                index = smoothed_mode(logits).float()
            else:
                index = (torch.softmax(logits, -1) * torch.arange(n, dtype=torch.float32)).sum(-1)
            token_ids = index.round().long().clamp(0, n - 1)
            logprob = token_log_prob(logits, token_ids, 1.0)
        stats = self.norm_stats
        actions = stats.tokenizer.decode(index.numpy().clip(0, n - 1e-3))  # the mean falls between bin centres
        return np.clip(actions, stats.action_low, stats.action_high).astype(np.float32), token_ids, logprob

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="drawer-close")
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=None, help="Default: the cycle's validation scenes.")
    ap.add_argument("--decoders", default=",".join(DECODERS))
    ap.add_argument("policies", nargs="+", help="NAME=ARTIFACT_DIR")
    args = ap.parse_args()

    from vla.threads import bound_threads

    bound_threads(1)
    from data_store.measure import machine
    from trainer.evaluate import scene_outcomes
    from trainer.recipe import VALIDATION_SEED, recipe
    from vla.artifact import load_artifact

    first = VALIDATION_SEED if args.first_seed is None else args.first_seed
    seeds = range(first, first + args.scenes)
    safety = recipe("default").safety
    for spec in args.policies:
        name, _, path = spec.partition("=")
        for kind in args.decoders.split(","):
            policy = load_artifact(path)
            policy.sample = types.MethodType(decode_with(kind), policy)
            t0 = time.perf_counter()
            o = scene_outcomes(policy, args.task, seeds, 0.0, safety=safety)
            print(
                json.dumps(
                    {
                        "name": f"decoding/{args.task}/{name}/{kind}",
                        "figure": "success_rate",
                        "value": float(o.mean()),
                        "unit": "fraction",
                        "scenes": [first, first + args.scenes],
                        "outcomes": "".join("1" if x else "0" for x in o),
                        "wall_s": round(time.perf_counter() - t0, 1),
                        "policy": path,
                        "machine": machine(),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
