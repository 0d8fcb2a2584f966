"""atomic_path: the target is replaced only on success; killed runs leave nothing trusted."""

from pathlib import Path

import pytest

from unetseg.files import atomic_path


def test_file_replaced_on_success(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_folder_replaced_and_old_kept_on_error(tmp_path: Path):
    target = tmp_path / "folder"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path: Path):
    target = tmp_path / "out.h5"
    (tmp_path / ".out.h5.abc123.tmp").write_text("half")
    (tmp_path / ".out.h5.def456.tmp").mkdir()
    (tmp_path / ".other.h5.abc.tmp").write_text("not ours")
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.h5.abc.tmp", "out.h5"]
