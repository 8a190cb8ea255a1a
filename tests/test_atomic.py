"""All-or-nothing writes and the clean-up of temporary files whose writer died."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

import studio.atomic as atomic
from studio.atomic import open_temp, remove_stale_temps, write_atomically


def test_write_atomically_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    write_atomically(target, "new")
    write_atomically(tmp_path / "b.bin", b"\x00\x01")
    write_atomically(tmp_path / "c.txt", lambda path: path.write_text("by a callable"))
    assert target.read_text() == "new" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.txt").read_text() == "by a callable"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "c.txt"]


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch, failure):
    target = tmp_path / "a.json"
    target.write_text("old")

    def write_half_then_fail(file, data):
        file.write(data[: len(data) // 2])
        raise failure

    monkeypatch.setattr(atomic, "write_all", write_half_then_fail)
    with pytest.raises(type(failure)):
        write_atomically(target, "new contents")

    def encoder_dies(path):
        path.write_text("half")
        raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "b.gif", encoder_dies)
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and target.read_text() == "old"


def leave_stale_temp(folder) -> str:
    """What a writer killed with -9 mid-write leaves behind: its hidden temporary file; returns its name."""
    code = (
        "import os, sys; from studio.atomic import open_temp;"
        "fd, path = open_temp(sys.argv[1], '.png'); os.write(fd, b'half'); print(path.name); os._exit(0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)], check=True, timeout=60, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_stale_temporary_files_are_removed_but_live_ones_kept(tmp_path):
    leave_stale_temp(tmp_path)
    (stale,) = list(tmp_path.iterdir())
    assert stale.name.startswith(".gan-studio-") and stale.name.endswith(".partial.png")
    fd, live = open_temp(tmp_path, ".png")  # a writer still at work (another window)
    (tmp_path / "keep.png").write_bytes(b"a finished export")
    try:
        assert remove_stale_temps(tmp_path) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "keep.png"])
    finally:
        os.close(fd)
    assert remove_stale_temps(tmp_path) == 1  # its writer has finished (or died): now it goes too
    assert remove_stale_temps(tmp_path / "missing") == 0
