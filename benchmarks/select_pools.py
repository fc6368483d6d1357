"""Apply the resampled-pools rule of docs/results.md ("Resampled model pools") to the reports of
``benchmarks/model_pools.py``.

Usage: select_pools.py POOLS_DIR [--json OUT]

Admissible: the candidates never below BMA by more than 0.002 on the four by-task reports (fixed in
the rule). Each candidate's failure rate is the share of pools where its gain over BMA is below
-0.002; the admissible candidate with the lowest rate wins, rates within 0.05 tie, ties go to the
larger mean gain over the pools, then to the order of CANDIDATES. Leave one dataset out: the choice on
one dataset's pools is reported on the other's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core.evaluate import CANDIDATE_METHOD, CANDIDATES

ADMISSIBLE = ("S3_nested", "S3_uncertain", "S3_posterior", "S3_local_uncertain", "S3_combined_uncertain")
FAIL, TIE = -0.002, 0.05


def gains(pools: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per candidate, its gain over BMA in each pool."""
    return {c: [p["accuracy"][c] - p["accuracy"]["BMA"] for p in pools] for c in CANDIDATES}


def stats(g: list[float]) -> tuple[float, float]:
    """(failure rate, mean gain)."""
    return sum(x < FAIL for x in g) / len(g), sum(g) / len(g)


def choose(g: dict[str, list[float]]) -> str:
    def key(c: str) -> tuple[float, float, int]:
        rate, mean = stats(g[c])
        return (-round(rate / TIE), mean, -CANDIDATES.index(c))
    return max(ADMISSIBLE, key=key)


def main(argv: list[str]) -> int:
    out = Path(argv[argv.index("--json") + 1]) if "--json" in argv else None
    folder = Path(argv[0])
    per_set = {p.stem: gains(json.loads(p.read_text())["pools"]) for p in sorted(folder.glob("*.json"))
               if p.name != "selection.json"}
    every = {c: [x for g in per_set.values() for x in g[c]] for c in CANDIDATES}
    names = list(per_set)
    print("| candidate | admissible | " + " | ".join(f"{n}: failures / mean gain" for n in names)
          + " | all pools: failures / mean gain |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for c in CANDIDATES:
        cells = []
        for g in [*(per_set[n][c] for n in names), every[c]]:
            rate, mean = stats(g)
            cells.append(f"{rate:.2f} ({sum(x < FAIL for x in g)}/{len(g)}) / {mean:+.4f}")
        print(f"| {c} | {'yes' if c in ADMISSIBLE else 'no'} | " + " | ".join(cells) + " |")
    held = {}
    for n in names:
        others = {c: [x for m in names if m != n for x in per_set[m][c]] for c in CANDIDATES}
        pick = choose(others) if len(names) > 1 else choose(per_set[n])
        rate, mean = stats(per_set[n][pick])
        held[n] = {"chosen_on_others": pick, "failure_rate": rate, "mean_gain": mean}
        print(f"- held out {n}: chosen on the others: **{pick}**; on {n}: failure rate {rate:.2f}, "
              f"mean gain {mean:+.4f}")
    chosen = choose(every)
    print(f"\nChosen on all pools by this rule: **{chosen}** (method `{CANDIDATE_METHOD[chosen]}`); the shipped "
          "default adds the binomial guard to it, by the ten-prompt rule (docs/results.md)")
    if out:
        out.write_text(json.dumps({"per_dataset": per_set, "held_out": held, "chosen": chosen,
                                   "method": CANDIDATE_METHOD[chosen]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
