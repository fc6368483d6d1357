"""This machine's pip configuration, handed to an image build as `podman build` arguments.

A real build reaches PyPI and the PyTorch CPU index. A machine that reaches only the indexes its own
pip is configured with (a mirror, local folders of wheels, its own CA bundle) builds the same
Dockerfile with that configuration instead: the merged result of ``pip config list`` (files and
``PIP_*`` variables) is written to ``DIR/pip.conf`` and mounted as the build's ``/etc/pip.conf``,
every local path it names is mounted read-only at the same place, and ``TORCH_INDEX_URL`` becomes
the machine's index (the CPU torch wheel then comes from its local wheels). Mounts exist only while
RUN steps run: the layers keep none of their contents, only the empty mount points (an empty
/etc/pip.conf, empty /opt/wheels and the like; a build without IMAGE_PIP=machine has none).

Usage: python machine_pip.py DIR   (prints one argument per line)
"""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
ENV_SECTION = ":env:"


def machine_config() -> dict[str, dict[str, str]]:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True, capture_output=True,
                         text=True).stdout
    return parse_config_list(out)


def parse_config_list(out: str) -> dict[str, dict[str, str]]:
    """``pip config list`` output as {section: {key: value}}, environment variables winning over files."""
    files: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, raw = line.partition("=")
        if not sep:
            continue
        section, _, key = name.rpartition(".")
        value = str(ast.literal_eval(raw))
        if section == ENV_SECTION:
            env[key] = value
        else:
            files.setdefault(section, {})[key] = value
    files.setdefault("global", {}).update(env)
    return files


def local_paths(config: dict[str, dict[str, str]]) -> list[Path]:
    """Existing local paths the configuration names (an index folder's parent: its links go beside it)."""
    paths: set[Path] = set()
    for section in config.values():
        for key, value in section.items():
            for token in value.split():
                is_url = token.startswith("file://")
                path = Path(token.removeprefix("file://"))
                if not path.is_absolute() or not path.exists():
                    continue
                if is_url and key.endswith("index-url"):
                    path = path.parent
                paths.add(path)
    # a path inside another mounted one needs no mount of its own
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def index_url(config: dict[str, dict[str, str]]) -> str:
    for section in ("install", "global"):
        if "index-url" in config.get(section, {}):
            return config[section]["index-url"]
    return DEFAULT_INDEX


def build_args(out_dir: Path) -> list[str]:
    config = machine_config()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(config)
    conf = out_dir / "pip.conf"
    with conf.open("w") as fh:
        parser.write(fh)
    args = [f"--volume={conf}:/etc/pip.conf:ro"]
    args += [f"--volume={p}:{p}:ro" for p in local_paths(config)]
    args.append(f"--build-arg=TORCH_INDEX_URL={index_url(config)}")
    return args


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("\n".join(build_args(Path(sys.argv[1]))))


if __name__ == "__main__":
    main()
