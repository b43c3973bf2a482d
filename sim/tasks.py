"""The task registry of the simulated arm: Meta-World v3 tasks with instructions and camera views.

A task has a short name (``push``), its Meta-World v3 environment (``push-v3``), several phrasings of
the instruction (a policy should not overfit one sentence), a default episode length, and the camera
view that shows what the task depends on at 64×64.

Camera views were chosen by looking at renders (``flywheel sim render``) of several seeds:

- ``corner4`` is the default: close to the table, the arm and the work area both in view, no
  occlusion of the table by the arm in the start pose. Drawers, buttons, windows and doors are 10–25
  pixels wide at 64×64 with the camera's own 60° field of view.
- Small objects (the push / pick-place puck, the reach target, the faucet handle) are 2–4 pixels in
  the 60° view, so those tasks narrow ``corner4`` to a 40° field of view: the puck grows
  to ~4–6 pixels and object and goal stay inside the frame over the task's whole random reset range.
- ``topview`` was rejected: the arm hides the puck once it is over it.

Any Meta-World v3 environment name is accepted (``faucet-open-v3`` or ``faucet-open``); one that is not
in the registry gets an instruction made from its name and the default view.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

DEFAULT_CAMERA = "corner4"
DEFAULT_MAX_STEPS = 150


@dataclass(frozen=True)
class TaskInfo:
    """One task of the simulated arm."""

    name: str  # short name, e.g. "drawer-close"
    env_name: str  # Meta-World v3 environment, e.g. "drawer-close-v3"
    instructions: tuple[str, ...]  # several phrasings; the first is the canonical one
    max_steps: int = DEFAULT_MAX_STEPS  # default episode length at 10 Hz
    camera: str = DEFAULT_CAMERA  # Meta-World camera name
    fovy: float | None = None  # vertical field of view in degrees; None keeps the camera's own

    @property
    def instruction(self) -> str:
        return self.instructions[0]

    def instruction_for(self, index: int) -> str:
        """The ``index``-th phrasing, cycling (e.g. the episode seed picks one)."""
        return self.instructions[index % len(self.instructions)]


_ZOOM = 40.0  # degrees: corner4 narrowed for small objects (see module docstring)

# max_steps: the scripted expert finishes these in 45–110 steps (measured in our own runs);
# the defaults leave room for a policy that is slower or corrects itself.
_REGISTRY: tuple[TaskInfo, ...] = (
    TaskInfo(
        "reach",
        "reach-v3",
        (
            "reach the goal position",
            "move the gripper to the target",
            "put your hand on the target point",
        ),
        max_steps=100,
        fovy=_ZOOM,
    ),
    TaskInfo(
        "push",
        "push-v3",
        (
            "push the puck to the goal",
            "slide the red puck onto the green target",
            "push the red block to the goal marker",
        ),
        max_steps=150,
        fovy=_ZOOM,
    ),
    TaskInfo(
        "pick-place",
        "pick-place-v3",
        (
            "pick up the puck and place it at the goal",
            "grasp the red puck and put it on the target",
            "lift the block and move it to the goal",
        ),
        max_steps=150,
        fovy=_ZOOM,
    ),
    TaskInfo(
        "drawer-open",
        "drawer-open-v3",
        ("open the drawer", "pull the drawer open", "slide the drawer out"),
        max_steps=150,
    ),
    TaskInfo(
        "drawer-close",
        "drawer-close-v3",
        ("close the drawer", "push the drawer shut", "slide the drawer closed"),
        max_steps=100,
    ),
    TaskInfo(
        "button-press-topdown",
        "button-press-topdown-v3",
        ("press the button from the top", "push the red button down", "press down on the button"),
        max_steps=100,
    ),
    TaskInfo(
        "window-open",
        "window-open-v3",
        ("open the window", "slide the window open", "push the window to the side to open it"),
        max_steps=150,
    ),
    TaskInfo(
        "window-close",
        "window-close-v3",
        ("close the window", "slide the window shut", "push the window closed"),
        max_steps=150,
    ),
    TaskInfo(
        "door-open",
        "door-open-v3",
        ("open the door", "pull the door open by its handle", "swing the door open"),
        max_steps=150,
    ),
    TaskInfo(
        "faucet-open",
        "faucet-open-v3",
        ("turn the faucet on", "rotate the faucet handle to open it", "open the faucet"),
        max_steps=150,
        fovy=_ZOOM,
    ),
    TaskInfo(
        "plate-slide",
        "plate-slide-v3",
        ("slide the plate into the goal", "push the plate into the net", "slide the plate forward to the target"),
        max_steps=150,
    ),
    TaskInfo(
        "coffee-button",
        "coffee-button-v3",
        ("press the button on the coffee machine", "push the coffee machine's button", "start the coffee machine"),
        max_steps=100,
    ),
)

TASKS: dict[str, TaskInfo] = {t.name: t for t in _REGISTRY}


@cache
def metaworld_env_names() -> tuple[str, ...]:
    """Every Meta-World v3 environment name (imports metaworld)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(sorted(ALL_V3_ENVIRONMENTS))


def resolve_task(name: str) -> TaskInfo:
    """The task called ``name``: a registry name, its ``-v3`` environment name, or any Meta-World v3 task.

    Raises ``ValueError`` listing the known names when nothing matches.
    """
    short = name.strip().lower().removesuffix("-v3")
    if short in TASKS:
        return TASKS[short]
    env_name = f"{short}-v3"
    if env_name in metaworld_env_names():
        words = short.replace("-", " ")
        return TaskInfo(name=short, env_name=env_name, instructions=(words, f"do the {words} task"))
    others = sorted(n.removesuffix("-v3") for n in metaworld_env_names() if n.removesuffix("-v3") not in TASKS)
    raise ValueError(
        f"unknown task {name!r}; registry: {', '.join(TASKS)}; other Meta-World v3 tasks: {', '.join(others)}"
    )
