"""The metrics directory is made fresh before the metrics load: created, or emptied in place."""

import os

from gateway.multiproc import ENV, fresh_multiproc_dir


def test_missing_directory_is_created(tmp_path, monkeypatch):
    target = tmp_path / "a" / "metrics"
    monkeypatch.setenv(ENV, str(target))
    assert fresh_multiproc_dir(required=False) == target and target.is_dir()


def test_existing_directory_is_emptied_not_replaced(tmp_path, monkeypatch):
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_text("stale")
    inode = tmp_path.stat().st_ino
    monkeypatch.setenv(ENV, str(tmp_path))
    fresh_multiproc_dir(required=True)
    assert list(tmp_path.iterdir()) == [] and tmp_path.stat().st_ino == inode


def test_unset_is_left_alone_unless_required(monkeypatch):
    monkeypatch.setenv(ENV, "x")  # recorded, so the variable is restored (unset) after the test
    monkeypatch.delenv(ENV)
    assert fresh_multiproc_dir(required=False) is None
    made = fresh_multiproc_dir(required=True)
    assert made is not None and made.is_dir()
    assert os.environ[ENV] == str(made)
