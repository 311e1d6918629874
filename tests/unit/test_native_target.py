"""What the native target says when a command cannot be started."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import TargetConfig
from harness.errors import TargetError
from harness.targets.native import NativeTarget


def test_a_missing_working_folder_is_named_not_blamed_on_the_command(
    tmp_path: Path, native_config: TargetConfig
) -> None:
    t = NativeTarget(native_config)
    gone = tmp_path / "gone"
    with pytest.raises(TargetError, match=r'working folder ".*gone" does not exist'):
        t.run(["python3", "-c", "pass"], timeout=30, cwd=str(gone))
    with pytest.raises(TargetError, match=r'command "no-such-program-xyz" not found'):
        t.run(["no-such-program-xyz"], timeout=30, cwd=str(tmp_path))
