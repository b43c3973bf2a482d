"""The LeRobot adapter without lerobot: it fails with the exact install line."""

from __future__ import annotations

import pytest


def test_missing_lerobot_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from data_store.optional import MissingDependency
    from vla.adapters.lerobot import LeRobotPolicy

    monkeypatch.setitem(sys.modules, "lerobot", None)  # importing lerobot now fails, as on this machine
    with pytest.raises(MissingDependency) as err:
        LeRobotPolicy.from_pretrained("/nonexistent")
    assert "pip install 'vla-flywheel[lerobot]'" in str(err.value)
    assert err.value.package == "lerobot" and isinstance(err.value, ImportError)


# A LeRobot policy through the adapter, against lerobot itself: tests/against_lerobot/test_arm_and_policy.py
