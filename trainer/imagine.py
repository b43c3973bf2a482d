"""Imagined rollouts (WMPO, arXiv 2511.09515, §3 and ``run_wm_inference``; WoVR, arXiv 2602.13977).

From real start frames out of the store, B×G trajectories advance together, chunk by chunk:

    policy samples an action chunk [B·G, K, A] at temperature 1.6 from the latest frame
    → the world model imagines the next K frames [B·G, K, H, W, 3]
    → the reward model looks at them; a trajectory ends at its first success (WMPO ``finish_step``)

until every trajectory has succeeded or used up its steps. Each start is repeated G times (a GRPO group).
A start is either an episode's first frame (WMPO) or a keyframe start (WoVR KIR, ``trainer/keyframes.py``):
the reference first frame plus the real frames and actions just before a keyframe, as world-model context.
The context is never a policy decision, so it is never in the loss (WoVR "skipping early frames").

Recorded per chunk (``grpo.Rollouts``): the observation the policy saw, token ids, old log-probs, and a
validity mask (chunks after the first success and beyond the start's step budget are masked).

Departures: WMPO's policy reads only the image; ours also reads proprio (hand xyz + gripper, see
``vla/model.py``), and the world model makes pixels only. So imagined proprio comes from a
:class:`ProprioNet`, a small MLP step model ``Δs_t = f(s_t, a_t, a_{t-1}, Δs_{t-1})`` fitted on the same real
episodes as the world model (``proprio="learned"``, default; :class:`ProprioModel` is the linear step model it
replaced, kept for tests and cost figures); ``"start"`` holds the start's real proprio instead. The reward
model scores frames one by one (``trainer/protocols.py``), so it sees each chunk's new frames once, and the
real context frames never count as a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from data_store.schema import Observation
from trainer.grpo import Rollouts
from trainer.protocols import RewardModel, WorldModel
from vla.protocol import Policy, TrainablePolicy


@dataclass(frozen=True)
class StartState:
    """Where imagined rollouts start: real frames from one recorded episode.

    ``context_frames[0]`` is the episode's first frame (the reference); the last is the frame the policy
    sees first. ``context_actions[i]`` is the real action that led into ``context_frames[i + 1]``.
    """

    context_frames: np.ndarray  # uint8 [C, H, W, 3]
    context_actions: np.ndarray  # float32 [C-1, A]
    state: np.ndarray  # float32 [S], real proprio at the start
    instruction: str
    steps_left: int  # environment steps this rollout may still take (task horizon − start step)
    episode_id: str = ""
    start_step: int = 0  # 0 for a first-frame start; the KIR start step otherwise
    kind: str = "first_frame"  # "first_frame" | a keyframe kind ("grasp", "contact", "divergence", ...)


@dataclass(frozen=True)
class ImagineConfig:
    group_size: int = 8  # G (both papers)
    temperature: float = 1.6  # both papers
    proprio: Literal["learned", "start"] = "learned"
    # the first ``deploy_members`` rollouts of each group act at ``deploy_temperature`` (what the robot runs: 0 is
    # deterministic) instead of sampling; their log-probs are taken at ``temperature`` like the others' (see grpo.py)
    deploy_members: int = 0
    deploy_temperature: float = 0.0


@dataclass
class ImaginedBatch:
    """The rollouts for GRPO plus what diagnostics need (frames, finish steps, starts)."""

    rollouts: Rollouts
    frames: np.ndarray  # uint8 [N, T, H, W, 3], the imagined frames (context excluded)
    finish_step: np.ndarray  # int64 [N]: frame index of the first success, -1 if none
    starts: list[StartState] = field(default_factory=list)  # [N]
    # float32 [N, T, A]: the actions the world model was given (after the safety filter), action t led to frame t;
    # what ``trainer.agreement`` replays on the arm
    actions: np.ndarray | None = None


def first_frame_start(
    frames: np.ndarray,  # uint8 [T, H, W, 3] of a real episode (only frame 0 is used)
    actions: np.ndarray,  # float32 [T, A]
    state0: np.ndarray,
    instruction: str,
    horizon: int,
    context_len: int,  # the world model's (``coevolution.context_len``): 1 reference + its memory frames
    episode_id: str = "",
) -> StartState:
    """WMPO's start: the first frame repeated to fill the context queue (WMPO's ``run_wm_inference``), no-op actions."""
    a = actions.shape[-1]
    return StartState(
        context_frames=np.repeat(frames[:1], context_len, axis=0),
        context_actions=np.zeros((context_len - 1, a), np.float32),
        state=np.asarray(state0, np.float32),
        instruction=instruction,
        steps_left=horizon,
        episode_id=episode_id,
    )


@dataclass(frozen=True)
class ProprioModel:
    """Imagined proprio: ``s_{t+1} = clip(s_t + a_t W + b, low, high)``, fitted on real steps (least squares).

    In Meta-World the action's xyz is a scaled hand displacement and its 4th value drives the gripper,
    so a linear step model is close where the hand moves freely (it cannot know about contacts).
    """

    weight: np.ndarray  # float32 [A, S]
    bias: np.ndarray  # float32 [S]
    low: np.ndarray  # float32 [S], the range seen in the data
    high: np.ndarray  # float32 [S]

    @classmethod
    def fit(cls, episodes: list[tuple[np.ndarray, np.ndarray]]) -> ProprioModel:
        """From (states float32 [T, S], actions float32 [T, A]) pairs of real episodes."""
        xs, ys = [], []
        for states, actions in episodes:
            if len(states) < 2:
                continue
            xs.append(actions[:-1].astype(np.float64))
            ys.append((states[1:] - states[:-1]).astype(np.float64))
        x = np.concatenate(xs)
        y = np.concatenate(ys)
        x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        coef, *_ = np.linalg.lstsq(x1, y, rcond=None)  # [A+1, S]
        all_states = np.concatenate([s for s, _ in episodes])
        return cls(
            weight=coef[:-1].astype(np.float32),
            bias=coef[-1].astype(np.float32),
            low=all_states.min(axis=0).astype(np.float32),
            high=all_states.max(axis=0).astype(np.float32),
        )

    def roll(self, state: np.ndarray, actions: np.ndarray, carry: Any = None) -> tuple[np.ndarray, Any]:
        """The state after the K actions of a chunk: state float32 [N, S], actions [N, K, A] -> ([N, S], None)."""
        s = state.astype(np.float32)
        for t in range(actions.shape[1]):
            s = np.clip(s + actions[:, t] @ self.weight + self.bias, self.low, self.high)
        return s.astype(np.float32), None


class ProprioNet:
    """Imagined proprio from a small MLP: ``Δs_t = f(s_t, a_t, a_{t-1}, Δs_{t-1})``, clipped to the seen range.

    The linear step model misses what matters in closed loop: the hand lags its commands (Meta-World moves a
    mocap target that the hand follows), and the gripper reading saturates. Over 100 steps of drawer-close
    (28 held-out episodes of the base, open loop on the real actions) its mean error at step 30 is 1.6/3.9/7.1 cm
    in x/y/z and 0.22 of the gripper's range; this model's is 0.5/1.8/1.1 cm and 0.002. With the linear model the
    base policy's imagined success from first frames was 0/64 against 48% real: it read a hand position that
    the imagined frames did not show. The previous action and step are the carry between chunks."""

    def __init__(self, net: torch.nn.Module, stats: dict[str, np.ndarray]) -> None:
        self.net = net.eval()
        self.stats = stats  # x_mean, x_std [2S+2A]; y_std [S]; low, high [S]

    @classmethod
    def fit(
        cls, episodes: list[tuple[np.ndarray, np.ndarray]], steps: int = 1500, batch: int = 512, seed: int = 0
    ) -> ProprioNet:
        """From (states float32 [T, S], actions float32 [T, A]) pairs of real episodes (~2 s on one core)."""
        xs, ys = [], []
        for states, actions in episodes:
            if len(states) < 2:
                continue
            n = len(states) - 1
            ds = np.diff(states, axis=0)
            a_prev = np.concatenate([np.zeros_like(actions[:1]), actions[: n - 1]])
            ds_prev = np.concatenate([np.zeros_like(ds[:1]), ds[: n - 1]])
            xs.append(np.concatenate([states[:n], actions[:n], a_prev, ds_prev], axis=1))
            ys.append(ds)
        if not xs:
            raise ValueError("ProprioNet.fit: no episode with two or more steps")
        x = np.concatenate(xs).astype(np.float32)
        y = np.concatenate(ys).astype(np.float32)
        all_states = np.concatenate([st for st, _ in episodes])
        stats = {
            "x_mean": x.mean(0),
            "x_std": x.std(0) + 1e-6,
            "y_std": y.std(0) + 1e-6,
            "low": all_states.min(0).astype(np.float32),
            "high": all_states.max(0).astype(np.float32),
        }
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], 128),
                torch.nn.SiLU(),
                torch.nn.Linear(128, 128),
                torch.nn.SiLU(),
                torch.nn.Linear(128, y.shape[1]),
            )
        xt = torch.from_numpy((x - stats["x_mean"]) / stats["x_std"])
        yt = torch.from_numpy(y / stats["y_std"])
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        with torch.enable_grad():
            for _ in range(steps):
                idx = torch.randint(len(xt), (min(batch, len(xt)),), generator=gen)
                loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return cls(net, stats)

    @torch.no_grad()
    def roll(self, state: np.ndarray, actions: np.ndarray, carry: Any = None) -> tuple[np.ndarray, Any]:
        """The state after the K actions of a chunk: state float32 [N, S], actions [N, K, A] -> ([N, S], carry).
        ``carry`` = (previous action [N, A], previous step [N, S]); None at the start (zeros, as in training)."""
        st = self.stats
        s = state.astype(np.float32)
        a_prev, ds_prev = carry if carry is not None else (np.zeros_like(actions[:, 0]), np.zeros_like(s))
        for t in range(actions.shape[1]):
            x = np.concatenate([s, actions[:, t], a_prev, ds_prev], axis=1)
            ds = self.net(torch.from_numpy(((x - st["x_mean"]) / st["x_std"]).astype(np.float32))).numpy()
            ds = ds * st["y_std"]
            s_next = np.clip(s + ds, st["low"], st["high"]).astype(np.float32)
            a_prev, ds_prev, s = actions[:, t].astype(np.float32), s_next - s, s_next
        return s, (a_prev, ds_prev)


def _observation(frame: np.ndarray, state: np.ndarray, instruction: str, camera: str, t: float) -> Observation:
    return Observation(images={camera: frame}, state=state, instruction=instruction, timestamp=t)


@torch.no_grad()
def check_pairing(policy: Policy, world_model: WorldModel, starts: Sequence[StartState]) -> None:
    """A policy and a world model imagine together only when the model predicts one frame per action of the
    policy's chunk, and the starts' frames are the size the model was trained at. A ValueError says which."""
    k_policy, k_model = int(policy.chunk_size), int(world_model.chunk_size)
    if k_policy != k_model:
        raise ValueError(
            f"the policy acts in chunks of {k_policy} actions, the world model predicts {k_model} frames per chunk: "
            f"train the world model with chunk_size={k_policy}"
        )
    want = tuple(int(x) for x in world_model.image_size)
    for s in starts:
        got = tuple(int(x) for x in s.context_frames.shape[1:3])
        if got != want:
            raise ValueError(
                f"the start frames are {got[0]}x{got[1]}, the world model's {want[0]}x{want[1]}: "
                "use a world model trained on episodes recorded at this size"
            )


def imagine_rollouts(
    policy: TrainablePolicy,
    world_model: WorldModel,
    reward_model: RewardModel,
    starts: list[StartState],  # B starts; each is rolled out G times
    cfg: ImagineConfig,
    camera: str,
    seed: int | None = None,
    proprio_model: ProprioModel | ProprioNet | None = None,
    safety: str | None = None,
) -> ImaginedBatch:
    """B×G imagined trajectories in lockstep. Shapes: N = B·G, C = max chunks, K = chunk size.

    ``safety`` (a ``robot_agent.safety`` preset name, e.g. "sim"): every action goes through the robot's safety
    filter before the world model sees it, as on the robot (the world model trained on filtered actions); the
    filter's workspace check reads the imagined proprio at the start of each chunk. None: raw policy actions."""
    if seed is not None:
        torch.manual_seed(seed)
    if cfg.proprio == "learned" and proprio_model is None:
        raise ValueError("imagine_rollouts: proprio='learned' needs a ProprioModel (ProprioModel.fit on real episodes)")
    check_pairing(policy, world_model, starts)
    g = cfg.group_size
    rows = [s for s in starts for _ in range(g)]  # group members are consecutive
    n = len(rows)
    k = int(world_model.chunk_size)
    steps_left = np.array([s.steps_left for s in rows])
    chunks_left = np.maximum(1, -(-steps_left // k))  # ceil
    c_max = int(chunks_left.max())

    context = np.stack([s.context_frames for s in rows])  # [N, C, H, W, 3]
    context_actions = np.stack([s.context_actions for s in rows])  # [N, C-1, A]
    wm_state = world_model.reset(context, context_actions)
    latest = context[:, -1]  # [N, H, W, 3]: the frame the policy sees first
    proprio = np.stack([s.state for s in rows]).astype(np.float32)  # [N, S]
    proprio_carry: Any = None  # what the proprio model carries between chunks

    observations: list[list[Observation]] = [[] for _ in range(n)]
    token_ids = torch.zeros((n, c_max, k, 0), dtype=torch.long)
    old_logprob = torch.zeros((n, c_max))
    mask = torch.zeros((n, c_max), dtype=torch.bool)
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    finish_step = np.full(n, -1, dtype=np.int64)
    imagined: list[np.ndarray] = []
    sent: list[np.ndarray] = []  # the actions each chunk gave the world model

    filters = _safety_filters(policy, safety, n)
    deployed = np.arange(n) % g < cfg.deploy_members  # [N]: rows acting as the robot does
    for c in range(c_max):
        obs = [_observation(latest[i], proprio[i], rows[i].instruction, camera, float(c)) for i in range(n)]
        actions, tokens, logprob = _act(policy, obs, deployed, cfg, filters, proprio)
        if c == 0:
            token_ids = torch.zeros((n, c_max, *tokens.shape[1:]), dtype=torch.long)
        frames, wm_state = world_model.step(wm_state, actions)  # [N, K, H, W, 3]
        active = ~done & (c < chunks_left)
        for i in range(n):
            observations[i].append(obs[i])
        token_ids[:, c] = tokens.detach().to(torch.long)
        old_logprob[:, c] = logprob.detach().float()
        mask[:, c] = torch.as_tensor(active)
        imagined.append(frames)
        sent.append(actions)

        newly, at_step = _successes(reward_model, frames, active, c * k, steps_left)
        success |= newly
        finish_step[newly] = at_step[newly]
        done |= newly | (c + 1 >= chunks_left)
        latest = frames[:, -1]
        if cfg.proprio == "learned" and proprio_model is not None:
            proprio, proprio_carry = proprio_model.roll(proprio, actions, proprio_carry)
        if done.all():
            break

    used = len(imagined)
    return ImaginedBatch(
        rollouts=Rollouts(
            observations=observations,
            token_ids=token_ids[:, :used],
            old_logprob=old_logprob[:, :used],
            mask=mask[:, :used],
            success=torch.as_tensor(success, dtype=torch.float32),
            group_size=g,
            info={"source": "imagined"},
        ),
        frames=np.concatenate(imagined, axis=1),
        finish_step=finish_step,
        starts=rows,
        actions=np.concatenate(sent, axis=1).astype(np.float32),
    )


def _safety_filters(policy: TrainablePolicy, safety: str | None, n: int) -> list[Any] | None:
    """One robot safety filter per row (each keeps its own state between actions); None without a preset."""
    if safety is None:
        return None
    from trainer.sim_grpo import safety_filter

    return [safety_filter(policy.spec, safety) for _ in range(n)]


def _act(
    policy: TrainablePolicy,
    obs: list[Observation],
    deployed: np.ndarray,
    cfg: ImagineConfig,
    filters: list[Any] | None,
    proprio: np.ndarray,
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Every row's next chunk, sampled (the ``deployed`` rows at the deployment temperature), then through its
    safety filter where there is one: actions float32 [N,K,A], tokens [N,K,A], chunk log-probs [N]."""
    if deployed.any():
        actions, tokens, logprob = _sample_mixed(policy, obs, deployed, cfg)
    else:
        actions, tokens, logprob = policy.sample(obs, cfg.temperature)  # [N,K,A], [N,K,A], [N]
    actions = np.asarray(actions, np.float32)
    if filters is not None:
        actions = np.stack([
            np.stack([filters[i].filter(a, state=proprio[i], now=0.0, issued_at=0.0).action for a in actions[i]])
            for i in range(len(obs))
        ])  # fmt: skip
    return actions, tokens, logprob


def _successes(
    reward_model: RewardModel, frames: np.ndarray, active: np.ndarray, first_step: int, steps_left: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose success the reward model sees in this chunk's frames (which start at step ``first_step``),
    and the step of each row's first success (meaningful where it succeeded)."""
    # the reward model scores per frame (trainer/protocols.py): the new frames are all it needs to see
    at = np.asarray(reward_model.first_success(frames)).astype(np.int64)  # [N], -1 where none
    # a success counts within the start's step budget only (the last chunk may run past it)
    newly = active & (at >= 0) & (first_step + at < steps_left)
    return newly, first_step + at


def _sample_mixed(
    policy: TrainablePolicy, obs: list[Observation], deployed: np.ndarray, cfg: ImagineConfig
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Sample at ``cfg.temperature`` for most rows and act at ``cfg.deploy_temperature`` for the ``deployed`` rows,
    whose chunk log-probs are then taken at ``cfg.temperature``: one log-prob scale for the whole group."""
    idx_d, idx_s = np.flatnonzero(deployed), np.flatnonzero(~deployed)
    a_d, t_d, _ = policy.sample([obs[i] for i in idx_d], cfg.deploy_temperature)
    lp_d = policy.log_prob([obs[i] for i in idx_d], t_d, temperature=cfg.temperature)
    parts = [(idx_d, np.asarray(a_d), t_d, lp_d)]
    if len(idx_s):
        a_s, t_s, lp_s = policy.sample([obs[i] for i in idx_s], cfg.temperature)
        parts.append((idx_s, np.asarray(a_s), t_s, lp_s))
    n = len(obs)
    actions = np.zeros((n, *parts[0][1].shape[1:]), np.float32)
    tokens = torch.zeros((n, *parts[0][2].shape[1:]), dtype=parts[0][2].dtype)
    logprob = torch.zeros(n)
    for idx, a, t, lp in parts:
        actions[idx] = a
        tokens[torch.as_tensor(idx)] = t.cpu()
        logprob[torch.as_tensor(idx)] = lp.detach().float().cpu()
    return actions, tokens, logprob


# ------------------------------------------------------------------------------ starts from the store


def first_frame_starts(
    store: Any,
    task: str,
    horizon: int,
    context_len: int,
    camera: str | None = None,
    robot_ids: tuple[str, ...] | None = None,
) -> list[StartState]:
    """One WMPO start per complete episode of ``task`` in the store (its real first frame and proprio)."""
    starts = []
    for info in store.episodes(task=task, status="complete"):
        if robot_ids is not None and info.robot_id not in robot_ids:
            continue
        r = store.open(info.episode_id)
        cam = camera or next(iter(r.spec.cameras))
        frames = r.images(cam)[:1]
        starts.append(
            first_frame_start(
                frames, r.actions()[:1], r.states()[0], info.instruction, horizon, context_len, info.episode_id
            )
        )
    return starts


@dataclass
class StartSampler:
    """Draws B starts: a ``kir_share`` of them keyframe starts (WoVR KIR), the rest first frames (WMPO)."""

    first_frames: list[StartState]
    keyframe_starts: list[StartState]
    kir_share: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.first_frames and not self.keyframe_starts:
            raise ValueError("StartSampler: no starts (the store has no complete episodes of this task)")
        self._rng = np.random.default_rng(self.seed)

    def reseed(self, seed: int) -> None:
        """Draw from here on as a fresh sampler seeded with ``seed`` would."""
        self._rng = np.random.default_rng(seed)

    def draw(self, b: int) -> list[StartState]:
        out = []
        for _ in range(b):
            use_kir = bool(self.keyframe_starts) and (not self.first_frames or self._rng.random() < self.kir_share)
            pool = self.keyframe_starts if use_kir else self.first_frames
            out.append(pool[int(self._rng.integers(len(pool)))])
        return out
