"""router_core speed, side by side in one run: embedding, build, kNN (hnswlib vs exact), decision.

    .venv/bin/python benchmarks/router_core.py [--sizes 10000 100000 1000000] [--queries 300]

Prints a table; nothing here asserts a time. At scale the pool is synthetic but shaped like real
embeddings: real benchmark embeddings plus Gaussian noise, renormalised (pure random unit vectors
in 384 dimensions are all ~equally far apart, which no real pool is; ``--random`` measures that
worst case). recall@5 against exact search is printed beside the latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# this file shares the package's name: keep its folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402  (after the sys.path lines above)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def unit(rng: np.random.Generator, n: int, d: int = 384) -> np.ndarray:
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - s), d)).astype(np.float32)
        out[s:s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def like_real(rng: np.random.Generator, base: np.ndarray, n: int, noise: float = 0.35) -> np.ndarray:
    """n vectors near random real embeddings (noise = norm of the added Gaussian)."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = base[rng.integers(0, len(base), m)] + rng.standard_normal((m, base.shape[1])).astype(np.float32) * (
            noise / np.sqrt(base.shape[1]))
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_knn(sizes: list[int], queries: int, base: np.ndarray | None) -> None:
    from router_core.index import ExactIndex, HnswIndex

    rng = np.random.default_rng(0)
    make = (lambda n: unit(rng, n)) if base is None else (lambda n: like_real(rng, base, n))
    kind = "random unit vectors" if base is None else f"real embeddings + noise ({len(base)} bases)"
    print(f"\n## kNN, k=19 (g uses the first 5), dim 384, {queries} single-vector queries, pool: {kind}")
    print(f"{'pool':>9} {'hnsw build s':>13} {'hnsw p50 ms':>12} {'hnsw p99 ms':>12} "
          f"{'exact p50 ms':>13} {'exact p99 ms':>13} {'recall@5':>9}")
    for n in sizes:
        pool = make(n)
        q = make(queries)
        t0 = time.perf_counter()
        h = HnswIndex.build(pool, ef_construction=100 if n > 200_000 else 200)
        build_s = time.perf_counter() - t0
        e = ExactIndex(pool)
        ht, et, rec = [], [], []
        for i in range(queries):
            t = time.perf_counter()
            hi, _ = h.query(q[i], 19)
            ht.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            ei, _ = e.query(q[i], 19)
            et.append((time.perf_counter() - t) * 1e3)
            rec.append(len(set(hi[0, :5]) & set(ei[0, :5])) / 5)
        print(f"{n:>9} {build_s:>13.1f} {pct(ht, 50):>12.3f} {pct(ht, 99):>12.3f} "
              f"{pct(et, 50):>13.3f} {pct(et, 99):>13.3f} {np.mean(rec):>9.3f}", flush=True)
        del pool, h, e


def bench_embed_build_decide(data_dir: str, n_embed: int, backend: str) -> np.ndarray:
    from router_core import data, embed, loto
    from router_core.router import build_from_vectors
    from router_core.state import TaskAggregates

    d = data.load(data_dir)
    enc = embed.make_encoder(backend)
    texts = d.prompts[:n_embed]
    enc.encode(texts[:16])  # warm up
    t0 = time.perf_counter()
    enc.encode(texts)
    dt = time.perf_counter() - t0
    print(f"\n## Embedding ({backend}; {d.name}, {len(texts)} prompts, batch 64, no cache)")
    print(f"throughput: {len(texts) / dt:.1f} prompts/s ({dt:.1f} s)")

    cached = embed.get_encoder()
    t0 = time.perf_counter()
    vectors = cached.encode(d.prompts)
    t_cache = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = loto.compute(vectors, d.tasks, d.labels)
    t_loto = time.perf_counter() - t0
    t0 = time.perf_counter()
    router = build_from_vectors(d, vectors, table=table)
    t_index = time.perf_counter() - t0
    print(f"\n## Build ({d.name}: {len(d)} prompts, {len(d.task_names)} tasks, {len(d.models)} models)")
    print(f"embeddings (cache lookup): {t_cache:.2f} s; LOTO targets (exact masked search): {t_loto:.2f} s; "
          f"index + router: {t_index:.2f} s")

    print("\n## Per-prompt decision latency (embed one prompt + kNN + fold + decide), 200 prompts")
    rng = np.random.default_rng(1)
    sample = [d.prompts[i] + " (variant)" for i in rng.choice(len(d), 200, replace=False)]  # uncached texts
    agg = TaskAggregates.empty(len(d.models))
    parts: dict[str, list[float]] = {"embed": [], "knn+g": [], "fold+decide": [], "total": []}
    for text in sample:
        t0 = time.perf_counter()
        v = enc.encode([text])
        t1 = time.perf_counter()
        g, u = router.predict(v)
        t2 = time.perf_counter()
        agg = agg.fold(g[0], float(u[0]))
        router.decide(agg)
        t3 = time.perf_counter()
        for k, x in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            parts[k].append(x * 1e3)
    print(f"{'step':<12} {'p50 ms':>8} {'p99 ms':>8}")
    for k, xs in parts.items():
        print(f"{k:<12} {statistics.median(xs):>8.2f} {pct(xs, 99):>8.2f}")
    return vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--n-embed", type=int, default=500)
    ap.add_argument("--random", action="store_true", help="pure random unit vectors for the kNN pool")
    ap.add_argument("--encoder-backend", default="onnx", choices=["onnx", "torch"])
    from router_core.data import shared_data_root

    ap.add_argument("--data", default=str(shared_data_root() / "routerbench-subset"))
    args = ap.parse_args()
    import torch

    print(f"# router_core benchmark: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    vectors = bench_embed_build_decide(args.data, args.n_embed, args.encoder_backend)
    bench_knn(args.sizes, args.queries, None if args.random else vectors)


if __name__ == "__main__":
    main()
