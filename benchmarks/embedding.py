"""The sentence encoder on ONNX Runtime against torch, side by side in one run, on real prompts.

    .venv/bin/python benchmarks/embedding.py [--prompts 2000] [--single 300] [--json OUT]

2,000 prompts drawn (seeded) from every benchmark folder under the shared data (ROUTER_SHARED_DATA
overrides). Both backends are used bare (no embedding cache). Single-prompt latency: one prompt per
call, the two backends alternating prompt by prompt so that a change of machine load hits both.
Batch throughput: all prompts in one call (batch 64, each backend sorting by length). Cosine: the
ONNX vector of each prompt against the torch one. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from real_prompts import real_prompts  # benchmarks/real_prompts.py


def run(n_prompts: int, n_single: int) -> dict[str, Any]:
    from router_core.embed import make_encoder

    texts = real_prompts(n_prompts)
    encoders = {b: make_encoder(b) for b in ("torch", "onnx")}
    for enc in encoders.values():
        enc.encode(texts[:64])  # warm-up
    single: dict[str, list[float]] = {b: [] for b in encoders}
    for i, text in enumerate(texts[:n_single]):
        for b in (("torch", "onnx") if i % 2 == 0 else ("onnx", "torch")):
            t0 = time.perf_counter()
            encoders[b].encode([text])
            single[b].append((time.perf_counter() - t0) * 1e3)
    vectors: dict[str, np.ndarray] = {}
    rates: dict[str, float] = {}
    for b, enc in encoders.items():
        t0 = time.perf_counter()
        vectors[b] = enc.encode(texts)
        rates[b] = len(texts) / (time.perf_counter() - t0)
    cos = np.sum(vectors["onnx"] * vectors["torch"], axis=1)
    return {"prompts": len(texts),
            **{b: {"single_p50_ms": statistics.median(single[b]), "batch_per_s": rates[b]} for b in encoders},
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=2000)
    ap.add_argument("--single", type=int, default=300, help="prompts timed one at a time (of the --prompts)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    import onnxruntime
    import torch

    print(f"# embedding benchmark: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), onnxruntime {onnxruntime.__version__}, load average {os.getloadavg()[0]:.2f}", flush=True)
    res = run(args.prompts, args.single)
    t, o = res["torch"], res["onnx"]
    print(f"\n{res['prompts']} prompts; single-prompt latency on the first {args.single}\n")
    print(f"| {'backend':<7} | {'single p50 ms':>13} | {'batch prompts/s':>15} |")
    print(f"|{'-' * 9}|{'-' * 14}:|{'-' * 16}:|")
    for name, r in (("torch", t), ("onnx", o)):
        print(f"| {name:<7} | {r['single_p50_ms']:>13.2f} | {r['batch_per_s']:>15.1f} |")
    ratio_single, ratio_batch = o["single_p50_ms"] / t["single_p50_ms"], o["batch_per_s"] / t["batch_per_s"]
    print(f"| onnx / torch | {ratio_single:>8.2f}x | {ratio_batch:>13.2f}x |")
    print(f"\ncosine onnx vs torch: mean {res['cosine_mean']:.7f}, min {res['cosine_min']:.7f}; "
          f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
