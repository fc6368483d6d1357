"""Smoke test of the built image, without a container runtime.

`podman run` cannot start containers in every sandbox (CI's cannot set rlimits), so the image's own
file system is mounted (`podman image mount`), bound read-only in a private mount namespace, given
writable tmpfs exactly where docker-compose.yaml gives the gateway one, and its entrypoint and
command (`llm-router serve` with the baked router) run under chroot as the image's user, with the
image's environment and working directory. The gateway config is the compose stack's, pointed at
the project's fake upstream on loopback (serving the baked artifact's models) and at serve's
embedded Redis. Checks: the image's Python cannot import torch or sentence-transformers (the
final stage has the serving environment only), readiness, the serving processes run the encoder on
ONNX Runtime (they map libonnxruntime and no torch library), one routed chat completion answered by
a model of the baked artifact, /metrics counting it, the process's uid and its read-only root.
Prints the image's size.

Needs root, podman and util-linux (unshare, mount, chroot); nothing a `docker build` would not put
in the image. Usage: python deploy/image/smoke.py [IMAGE]
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
PODMAN = shlex.split(os.environ.get("PODMAN", "podman"))
API_KEY = "sk-image-smoke"
PROMPT = "Which gas do plants absorb from the air for photosynthesis?"
T = TypeVar("T")


@dataclass(frozen=True)
class ImageConfig:
    """What a container runtime reads from the image to start it."""

    env: dict[str, str]
    argv: list[str]
    workdir: str
    user: str
    size: int


def podman(*args: str) -> str:
    return subprocess.run([*PODMAN, *args], check=True, capture_output=True, text=True).stdout


def image_config(image: str) -> ImageConfig:
    info = json.loads(podman("image", "inspect", image))[0]
    cfg = info["Config"]
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    return ImageConfig(env, (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or []),
                       cfg.get("WorkingDir") or "/", cfg.get("User") or "0", int(info["Size"]))


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    path = Path(podman("image", "mount", image).strip())
    try:
        yield path
    finally:
        podman("image", "unmount", image)


def compose_gateway() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]["gateway"]


def free_port() -> int:
    from gateway.redis_embedded import free_port as port

    return port()


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def with_option(argv: list[str], name: str, value: str) -> list[str]:
    out = list(argv)
    if name in out:
        out[out.index(name) + 1] = value
    else:
        out += [name, value]
    return out


def gateway_argv(image: ImageConfig, port: int) -> list[str]:
    """The image's entrypoint and command, on a loopback port, with the compose stack's workers."""
    argv = with_option(image.argv, "--host", "127.0.0.1")
    argv = with_option(argv, "--port", str(port))
    compose_cmd = compose_gateway()["command"]
    if "--workers" in compose_cmd:
        argv = with_option(argv, "--workers", option(compose_cmd, "--workers"))
    return argv


def write_config(path: Path, upstream: str) -> None:
    """The compose stack's gateway config, pointed at the local upstream and serve's embedded Redis."""
    volume = next(v for v in compose_gateway()["volumes"] if ":/etc/llm-router/" in v)
    cfg = yaml.safe_load((ROOT / volume.split(":")[0]).read_text())
    for model in cfg["model_list"]:
        model["litellm_params"]["api_base"] = upstream + "/v1"
    cfg["redis"].pop("url", None)
    path.write_text(yaml.safe_dump(cfg))


@dataclass(frozen=True)
class View:
    """The image's file system as the gateway sees it: read-only, with tmpfs and the mounted config."""

    rootfs: Path
    view: Path
    config_dir: Path
    config_target: str  # the config file's path inside the image


def launch_script(v: View, image: ImageConfig, argv: list[str], env: dict[str, str]) -> str:
    """Shell run inside `unshare --mount`: the read-only view, its writable places, then ``argv``."""
    q = shlex.quote
    rootfs, view, config_dir = v.rootfs, v.view, v.config_dir
    target = view / v.config_target.lstrip("/")
    lines = [f"mount --bind {q(str(rootfs))} {q(str(view))}",
             f"mount -o remount,bind,ro {q(str(view))}"]
    for spec in compose_gateway().get("tmpfs", []):
        where, _, opts = spec.partition(":")
        lines.append(f"mount -t tmpfs -o {q(opts or 'mode=1777')} tmpfs {q(str(view / where.lstrip('/')))}")
    lines += [f"mount --bind -o ro {q(str(config_dir))} {q(str(target.parent))}",
              f"mount -t proc proc {q(str(view / 'proc'))}",
              f"mount --rbind /dev {q(str(view / 'dev'))}"]
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    cmd = " ".join(q(a) for a in argv)
    lines.append(f"exec chroot --userspec={q(image.user)} {q(str(view))} "
                 f"/usr/bin/env -i -C {q(image.workdir)} {env_args} {cmd}")
    return " && ".join(lines)


def upstream_argv(port: int, models: list[str]) -> list[str]:
    """The project's fake upstream, from the checkout's environment (it is no part of the image)."""
    return [sys.executable, "-m", "gateway", "upstream", "--port", str(port), *(f"--models={m}" for m in models)]


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(check: Callable[[], T], what: str, proc: subprocess.Popen, log: Path, timeout_s: float = 300) -> T:
    """Poll until ``check`` returns something truthy; a deadline only against hanging forever."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what}: process exited with {proc.returncode}\n{log.read_text()[-4000:]}")
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise SystemExit(f"{what}: not reached in {timeout_s:.0f} s ({last!r})\n{log.read_text()[-4000:]}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"image smoke test failed: {what}")
    print(f"  ok  {what}")


def process_facts(pid: int) -> tuple[str, str]:
    """The process's real uid and the options of its root mount."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    mounts = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    root_opts = next(fields[5] for fields in mounts if fields[4] == "/")
    return uid, root_opts


TORCH_MODULES = ("torch", "sentence_transformers", "transformers")


def image_python(v: View, image: ImageConfig, code: str) -> subprocess.CompletedProcess:
    """``python -c code`` in the image, run as the gateway is (its view, its user, its environment)."""
    script = launch_script(v, image, ["python", "-c", code], image.env)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300)


def last_line(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def check_no_torch(v: View, image: ImageConfig) -> None:
    """The serving modules import in the image; torch and sentence-transformers are not there."""
    serving = image_python(v, image, "import onnxruntime, tokenizers, hnswlib, gateway.app")
    check(serving.returncode == 0, "the image's python imports onnxruntime, tokenizers, hnswlib, gateway.app"
          + ("" if serving.returncode == 0 else f": {last_line(serving)}"))
    for module in TORCH_MODULES:
        proc = image_python(v, image, f"import {module}")
        check(proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr,
              f"`import {module}` fails in the image ({last_line(proc)})")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (serve's workers are its children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def mapped_libraries(pid: int) -> set[str]:
    names: set[str] = set()
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return names  # exited meanwhile
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and ".so" in fields[5]:
            names.add(Path(fields[5]).name)
    return names


def check_onnx_encoder(gateway_pid: int) -> None:
    """Serving loaded the encoder on ONNX Runtime, and torch nowhere (readiness waits for the warm-up)."""
    libs = {pid: mapped_libraries(pid) for pid in process_tree(gateway_pid)}
    onnx = [pid for pid, names in libs.items() if any(n.startswith("libonnxruntime") for n in names)]
    torch = [pid for pid, names in libs.items() if any(n.startswith(("libtorch", "libc10")) for n in names)]
    check(bool(onnx), f"{len(onnx)} serving process(es) run the encoder on ONNX Runtime (libonnxruntime mapped)")
    check(not torch, "no serving process maps a torch library")


def baked_artifact(rootfs: Path, config: Path) -> dict:
    """The manifest of the router artifact the gateway config names, read from the image."""
    artifact = yaml.safe_load(config.read_text())["router"]["artifact"]
    return json.loads((rootfs / artifact.lstrip("/") / "manifest.json").read_text())


def check_gateway(url: str, manifest: dict) -> None:
    from gateway.metrics import REQUESTS, ROUTER_INFO

    version, served_models = manifest["version"], manifest["models"]
    resp = httpx.post(url + "/v1/chat/completions", timeout=120,
                      headers={"Authorization": f"Bearer {API_KEY}", "X-Task-ID": "image-smoke"},
                      json={"model": "router", "messages": [{"role": "user", "content": PROMPT}]})
    check(resp.status_code == 200,
          f"routed chat completion answers {resp.status_code}" + ("" if resp.status_code == 200 else resp.text[:500]))
    served = resp.headers["x-router-model"]
    check(served in served_models and resp.json()["model"] == served, f"answered by {served}, a model of the artifact")
    check(resp.headers["x-router-decision"] == "provisional", "first prompt of a task: a provisional decision")
    check(resp.headers["x-router-artifact"] == version, f"served by the baked artifact {version}")

    scrape = httpx.get(url + "/metrics", timeout=10)
    check(scrape.status_code == 200, "/metrics answers")
    samples = [s for fam in text_string_to_metric_families(scrape.text) for s in fam.samples]
    requests_name = next(iter(REQUESTS.describe())).name + "_total"
    counted = sum(s.value for s in samples if s.name == requests_name and s.labels.get("served_model") == served
                  and s.labels.get("status_class") == "2xx")
    check(counted == 1, f"{requests_name} counts the request ({counted:g})")
    info_name = next(iter(ROUTER_INFO.describe())).name
    check(any(s.name == info_name and s.labels.get("version") == version and s.value == 1 for s in samples),
          f"{info_name} names the baked artifact")


def print_size(image: str, cfg: ImageConfig) -> None:
    print(f"image {image}: {cfg.size / 1e6:.0f} MB (uncompressed); largest layers:")
    rows = podman("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image).splitlines()
    for row in rows:
        size, _, created = row.partition("\t")
        if size.endswith(("MB", "GB")):
            print(f"  {size:>9}  {created.replace('/bin/sh -c ', '')[:110]}")


def main() -> None:
    image = sys.argv[1] if len(sys.argv) > 1 else "llm-router:local"
    if os.geteuid() != 0:
        raise SystemExit("image smoke test: needs root (mount, chroot)")
    cfg = image_config(image)
    with tempfile.TemporaryDirectory(prefix="llm-router-smoke-") as tmp, mounted(image) as rootfs:
        work = Path(tmp)
        up_port, gw_port = free_port(), free_port()
        up_url = f"http://127.0.0.1:{up_port}"
        (work / "config").mkdir()
        argv = gateway_argv(cfg, gw_port)
        config = work / "config" / Path(option(argv, "--config")).name
        write_config(config, up_url)
        manifest = baked_artifact(rootfs, config)
        (work / "view").mkdir()
        view = View(rootfs, work / "view", work / "config", option(argv, "--config"))
        check_no_torch(view, cfg)
        upstream = start(upstream_argv(up_port, manifest["models"]), work / "upstream.log")
        gateway = None
        try:
            wait_for(lambda: httpx.get(up_url + "/v1/models", timeout=2).status_code == 200, "fake upstream",
                     upstream, work / "upstream.log")
            env = {**cfg.env, "LLM_ROUTER_API_KEY": API_KEY, "UPSTREAM_API_KEY": "sk-upstream-smoke"}
            script = launch_script(view, cfg, argv, env)
            print(f"image {image}: {' '.join(argv)} as {cfg.user}, read-only root")
            started = time.monotonic()
            gateway = start(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            work / "gateway.log")
            url = f"http://127.0.0.1:{gw_port}"
            wait_for(lambda: httpx.get(url + "/health/readiness", timeout=2).status_code == 200,
                     "gateway readiness", gateway, work / "gateway.log")
            check(True, f"/health/readiness after {time.monotonic() - started:.0f} s")
            uid, root_opts = process_facts(gateway.pid)
            check(uid == cfg.user.split(":")[0], f"runs as uid {uid}")
            check("ro" in root_opts.split(","), f"root file system mounted {root_opts}")
            check_onnx_encoder(gateway.pid)
            check_gateway(url, manifest)
        finally:
            for proc in (gateway, upstream):
                if proc is not None:
                    stop(proc)
    print_size(image, cfg)
    print("image smoke test passed")


if __name__ == "__main__":
    main()
