"""Save and load a router as a directory; its content hash is its version.

Layout::

    manifest.json   format, version, models, params, meta, file hashes
    vectors.npy     (N, dim) float32 pool embeddings
    labels.npy      (N, M) float32, NaN = unlabelled
    loto.npz        task_of, task_names, u_train, p_train, task_accuracy, train_mean, agree, costs?
    index.bin       hnswlib graph (absent for small pools, which are searched exactly)

The version changes whenever any stored number changes, so a gateway can tag every cached
decision with it and drop decisions made by an older router.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import Calibration
from .reliability import DEFAULT_ERRORS, ErrorModel
from .decision import RoutingParams
from .index import ExactIndex, HnswIndex, NeighbourIndex
from .router import Router

FORMAT = 1
MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """A router directory that is missing, incomplete or from another format."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(router: Router, out: str | Path) -> str:
    """Write ``router`` to ``out`` (created if needed); returns the version."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", router.vectors)
    np.save(out / "labels.npy", router.labels)
    extra: dict[str, Any] = {} if router.costs is None else {"costs": router.costs}
    if router.agree is not None:
        extra["agree"] = router.agree.astype(np.float16)  # 0, 1 or NaN: exact in half precision
    # fixed-width strings: np.load(allow_pickle=False) reads them back
    np.savez(out / "loto.npz", task_of=router.task_of, task_names=np.array(router.task_names, dtype=str),
             u_train=router.u_train, p_train=router.p_train, task_accuracy=router.task_accuracy,
             train_mean=router.train_mean, **extra)
    files = ["vectors.npy", "labels.npy", "loto.npz"]
    index_file = out / "index.bin"
    if isinstance(router.index, HnswIndex):
        router.index.save(index_file)
        files.append("index.bin")
    elif index_file.exists():
        index_file.unlink()
    hashes = {f: _sha256(out / f) for f in files}
    meta = {k: v for k, v in router.meta.items() if k != "version"}
    calibration = None if router.calibration is None else router.calibration.to_dict()
    errors = router.errors.to_dict()
    content = json.dumps({"models": router.models, "params": router.params.to_dict(), "calibration": calibration,
                          "errors": errors, "bma": router.bma,
                          "files": {k: v for k, v in hashes.items() if k != "index.bin"}},
                         sort_keys=True)
    version = hashlib.sha256(content.encode()).hexdigest()[:12]
    manifest = {"format": FORMAT, "version": version, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "models": router.models, "bma": router.bma, "params": router.params.to_dict(),
                "calibration": calibration, "errors": errors,
                "n_prompts": int(len(router.labels)), "n_tasks": len(router.task_names),
                "dim": int(router.vectors.shape[1]), "meta": meta, "files": hashes}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    router.meta["version"] = version
    return version


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.exists():
        raise ArtifactError(f"{path}: not a router artifact (no {MANIFEST}); build one with 'llm-router build'")
    try:
        manifest: dict[str, Any] = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{mpath}:{exc.lineno}: {exc.msg}") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mpath}: format {manifest.get('format')!r}, this version reads {FORMAT}")
    return manifest


def load(path: str | Path, ef: int = 64) -> Router:
    """Load a saved router (a few hundred ms for 20k prompts)."""
    path = Path(path)
    manifest = read_manifest(path)
    for f in manifest["files"]:
        if not (path / f).exists():
            raise ArtifactError(f"{path}: missing {f}")
    vectors = np.load(path / "vectors.npy")
    labels = np.load(path / "labels.npy")
    z = np.load(path / "loto.npz", allow_pickle=False)
    n = int(manifest["n_prompts"])
    index: NeighbourIndex
    if "index.bin" in manifest["files"]:
        index = HnswIndex.load(path / "index.bin", dim=int(manifest["dim"]), size=n, ef=ef)
    else:
        index = ExactIndex(vectors)
    stored = dict(manifest["params"])
    stored.setdefault("method", "paper")  # artifacts from before the calibrated method
    params = RoutingParams(**stored)
    calibration = manifest.get("calibration")
    meta = dict(manifest.get("meta", {}))
    meta["version"] = manifest["version"]
    return Router(models=list(manifest["models"]), vectors=vectors, labels=labels,
                  task_of=z["task_of"], task_names=[str(t) for t in z["task_names"]],
                  u_train=z["u_train"], p_train=z["p_train"], task_accuracy=z["task_accuracy"],
                  train_mean=z["train_mean"], bma=int(manifest["bma"]),
                  costs=z["costs"] if "costs" in z.files else None, params=params, index=index, meta=meta,
                  calibration=None if calibration is None else Calibration.from_dict(calibration),
                  agree=z["agree"].astype(np.float32) if "agree" in z.files else None,
                  # artifacts from before the reliability policy: the documented default spreads
                  errors=ErrorModel.from_dict(manifest["errors"]) if "errors" in manifest else DEFAULT_ERRORS)
