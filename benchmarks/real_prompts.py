"""Real prompts for the benchmarks: drawn (seeded) from every benchmark folder under the shared data.

Shared by ``embedding.py`` and ``gateway_overhead.py --prompts real``, so that both time the encoder on
the prompts a deployment sees rather than one short sentence (ROUTER_SHARED_DATA overrides the folder).
Its callers put the repository root on ``sys.path`` first.
"""

from __future__ import annotations

import numpy as np


def real_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct prompts, an equal share from each shared benchmark folder."""
    from router_core import data

    root = data.shared_data_root()
    folders = sorted(p for p in root.iterdir() if (p / "records.jsonl.gz").exists())
    if not folders:
        raise SystemExit(f"no benchmark folders under {root}; set ROUTER_SHARED_DATA")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for i, folder in enumerate(folders):
        prompts = list(dict.fromkeys(data.load(folder).prompts))
        share = (n - len(out)) // (len(folders) - i)
        out += [prompts[j] for j in rng.choice(len(prompts), min(share, len(prompts)), replace=False)]
    return out
