"""Policy speed: chunk inference latency, peak memory and SFT throughput per preset, on this CPU.

    python benchmarks/policy_speed.py [--presets tiny,small,base] [--repeats 30] [--threads 1]

The same as ``flywheel bench policy-speed``. Each preset runs in its own subprocess (so its peak RSS is
its own) and prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``:

- ``chunk_latency_b1_p50/p99`` (ms): ``policy.sample([obs], T=1.6)`` — one K=8 × A=4 chunk, what the robot
  asks for every 8 ticks (``act`` is this plus wrapping);
- ``chunk_latency_b64_p50/p99`` (ms): ``sample`` on 64 observations at once, what imagined GRPO rollouts
  ask for; ``chunks_per_s_b64`` = 64 / p50;
- ``log_prob_b64_ms``: forward + backward of ``log_prob`` on 64 observations (a GRPO update's unit);
- ``sft_samples_per_s``: SFT steps (cross-entropy over action tokens, AdamW) at batch 32;
- ``peak_rss`` (MiB): the subprocess's peak resident memory after all of the above; ``parameters``.

Instructions repeat, so the language embedding is cached after the first call (as in deployment); the
``small``/``base`` presets use the real MiniLM encoder, ``tiny`` the hashed-word stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_store.measure import machine

ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_preset(preset: str, repeats: int, threads: int) -> Iterator[dict[str, Any]]:
    """All figures of one preset (run inside its own process)."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from data_store.schema import Observation, RobotSpec
    from trainer.sft import sft_loss
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    spec = RobotSpec(
        action_dim=4, state_dim=4, action_low=(-1.0,) * 4, action_high=(1.0,) * 4, cameras={"corner4": (64, 64)}
    )
    torch.manual_seed(0)
    policy = VLAPolicy(VLAConfig.preset(preset), NormStats.from_spec(spec), spec).eval()
    config = {"preset": preset, "threads": threads, "chunk": "8x4", "image": "64x64", "temperature": 1.6}
    config["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other processes on the machine: read figures with it
    base = {"machine": machine(), "config": config}
    obs = [Observation.fake(spec, instruction="open the drawer", seed=i) for i in range(64)]
    reps = max(3, repeats // 6) if preset == "base" else repeats

    def timed(fn: Any, n: int) -> list[float]:
        fn()  # warm-up (and the language-embedding cache)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return out

    b1 = timed(lambda: policy.sample(obs[:1], 1.6), reps)
    b64 = timed(lambda: policy.sample(obs, 1.6), max(3, reps // 3))
    _, tokens, _ = policy.sample(obs, 1.6)

    def grpo_unit() -> None:
        policy.zero_grad()
        policy.log_prob(obs, tokens, 1.6).sum().backward()

    lp = timed(grpo_unit, max(2, reps // 10))
    yield {"name": "policy_speed", "figure": "parameters", "value": policy.n_parameters(), "unit": "count", **base}
    for figure, values in (("chunk_latency_b1", b1), ("chunk_latency_b64", b64)):
        yield {
            "name": "policy_speed",
            "figure": f"{figure}_p50",
            "value": round(_percentile(values, 0.5), 3),
            "unit": "ms",
            **base,
        }
        yield {
            "name": "policy_speed",
            "figure": f"{figure}_p99",
            "value": round(_percentile(values, 0.99), 3),
            "unit": "ms",
            **base,
        }
    yield {
        "name": "policy_speed",
        "figure": "chunks_per_s_b64",
        "value": round(64_000 / _percentile(b64, 0.5), 1),
        "unit": "chunks/s",
        **base,
    }
    yield {
        "name": "policy_speed",
        "figure": "log_prob_fwd_bwd_b64",
        "value": round(_percentile(lp, 0.5), 1),
        "unit": "ms",
        **base,
    }

    rng = np.random.default_rng(0)
    batch_size = 32
    batch = (
        rng.integers(0, 256, size=(batch_size, 64, 64, 3), dtype=np.uint8),
        rng.normal(size=(batch_size, 4)).astype(np.float32),
        rng.uniform(-1, 1, size=(batch_size, 8, 4)).astype(np.float32),
        np.ones((batch_size, 8), dtype=bool),
        np.zeros(batch_size, dtype=np.int64),
    )
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    def sft_step() -> None:
        loss, _ = sft_loss(policy, batch, ["open the drawer"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    steps = timed(sft_step, max(2, reps // 3))
    yield {
        "name": "policy_speed",
        "figure": "sft_samples_per_s",
        "value": round(batch_size * 1000 / _percentile(steps, 0.5), 1),
        "unit": "samples/s",
        **{**base, "config": {**config, "batch": batch_size}},
    }
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    yield {"name": "policy_speed", "figure": "peak_rss", "value": round(peak_mib, 1), "unit": "MiB", **base}


def run(presets: tuple[str, ...], repeats: int = 30, threads: int = 1) -> Iterator[dict[str, Any]]:
    """Each preset in a fresh subprocess; yields its JSON rows."""
    for preset in presets:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            preset,
            "--repeats",
            str(repeats),
            "--threads",
            str(threads),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1",
        }
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"policy_speed {preset} failed:\n{done.stderr[-2000:]}")
        for line in done.stdout.splitlines():
            if line.startswith("{"):
                yield json.loads(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small,base")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one preset in this process
    a = p.parse_args()
    if a.one:
        sys.path.insert(0, str(ROOT))
        for row in measure_preset(a.one, a.repeats, a.threads):
            print(json.dumps(row), flush=True)
        return
    for row in run(tuple(s for s in a.presets.split(",") if s), a.repeats, a.threads):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
