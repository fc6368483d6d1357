"""deploy/image/machine_pip.py: the machine's pip configuration as `podman build` arguments."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from deploy_support import DEPLOY


def machine_pip():
    spec = importlib.util.spec_from_file_location("machine_pip", DEPLOY / "image" / "machine_pip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_wins_over_files_and_lands_in_global():
    mp = machine_pip()
    config = mp.parse_config_list(
        "global.find-links='/a'\n:env:.find-links='/b'\ninstall.index-url='https://mirror/simple'\n"
        ":env:.default-timeout='180'\n")
    assert config == {"global": {"find-links": "/b", "default-timeout": "180"},
                      "install": {"index-url": "https://mirror/simple"}}
    assert mp.index_url(config) == "https://mirror/simple"
    assert mp.index_url({"global": {}}) == mp.DEFAULT_INDEX


def test_local_paths_mount_an_index_with_the_files_beside_it(tmp_path: Path):
    mp = machine_pip()
    for d in ["repo/simple", "repo/files", "wheels/sub", "certs"]:
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "certs" / "ca.crt").write_text("x")
    config = {"global": {
        "extra-index-url": f"file://{tmp_path}/repo/simple https://pypi.example/simple",
        "find-links": f"{tmp_path}/wheels {tmp_path}/wheels/sub {tmp_path}/missing",
        "cert": f"{tmp_path}/certs/ca.crt",
        "timeout": "60"}}
    assert mp.local_paths(config) == [tmp_path / "certs" / "ca.crt", tmp_path / "repo", tmp_path / "wheels"]


def test_build_args_mount_the_merged_config_and_name_the_torch_index(tmp_path: Path, monkeypatch):
    mp = machine_pip()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setattr(mp, "machine_config", lambda: {"global": {"find-links": str(wheels)}})
    args = mp.build_args(tmp_path)
    assert args == [f"--volume={tmp_path / 'pip.conf'}:/etc/pip.conf:ro", f"--volume={wheels}:{wheels}:ro",
                    f"--build-arg=TORCH_INDEX_URL={mp.DEFAULT_INDEX}"]
    assert (tmp_path / "pip.conf").read_text().split() == ["[global]", "find-links", "=", str(wheels)]
