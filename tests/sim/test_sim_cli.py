"""`flywheel sim tasks` and `flywheel sim render`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from data_store.contact_sheet import read_png
from flywheel.cli import app


def test_tasks_table_lists_the_registry() -> None:
    result = CliRunner().invoke(app, ["sim", "tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("reach", "push", "drawer-close", "window-open"):
        assert name in result.output


def test_render_writes_a_png_of_one_frame_per_seed(tmp_path: Path) -> None:
    out = tmp_path / "frames.png"
    result = CliRunner().invoke(
        app, ["sim", "render", "--task", "reach", "--seeds", "0,1", "--size", "32", "--scale", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    image = read_png(out)
    assert image.shape == (32 * 2, 2 * 32 * 2, 3)
    assert image[:, :64].std() > 10 and not (image[:, :64] == image[:, 64:]).all()  # two different scenes


def test_render_unknown_task_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "render", "--task", "nope", "--out", str(tmp_path / "x.png")])
    assert result.exit_code != 0
    assert "unknown task" in result.output and "Traceback" not in result.output
