"""Apply the "labels as evidence" selection rule of docs/results.md to evaluation reports.

Usage: select_labels.py NAME=ZERO.json,ALPHA.json[,ALPHA.json...] [NAME=...] [--json OUT]

For each shared dataset NAME: ZERO.json is its ``llm-router eval`` report at alpha = 0 (the zero-label
default), then one report per alpha > 0. A candidate's score on (dataset, alpha) is its accuracy
minus the zero-label default's; the largest worst score wins, ties within 0.001 go to the larger
mean score, then to the order of LABEL_CANDIDATES. Leave one dataset out: for each dataset, the
rule applied to the others names the candidate reported on it; the choice on all of them ships.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core.evaluate import LABEL_CANDIDATES
# the script's own folder is on sys.path
from select_default import leave_one_dataset_out, load_report, split_json_out, write_choice

TIE = 0.001

Gains = dict[str, dict[float, float]]  # candidate -> alpha -> gain over the zero-label default


def gains(zero: dict[str, Any], with_labels: list[dict[str, Any]]) -> Gains:
    base = zero["methods"]["default"]["accuracy"]
    return {c: {float(r["alpha"]): r["methods"][c]["accuracy"] - base for r in with_labels}
            for c in LABEL_CANDIDATES}


def choose(per_set: dict[str, Gains]) -> str:
    def key(c: str) -> tuple[float, float, int]:
        vals = [v for g in per_set.values() for v in g[c].values()]
        return (round(min(vals) / TIE), sum(vals) / len(vals), -LABEL_CANDIDATES.index(c))
    return max(LABEL_CANDIDATES, key=key)


def main(argv: list[str]) -> int:
    argv, out_json = split_json_out(argv)
    per_set: dict[str, Gains] = {}
    for arg in argv:
        name, paths = arg.split("=", 1)
        zero, *rest = paths.split(",")
        per_set[name] = gains(load_report(zero), [load_report(p) for p in rest])
    names = list(per_set)
    alphas = sorted({a for g in per_set.values() for a in g[LABEL_CANDIDATES[0]]})
    cols = [f"{n} a={a:g}" for n in names for a in alphas]
    print("| candidate | " + " | ".join(cols) + " | worst | mean |")
    print("|---|" + "---|" * (len(cols) + 2))
    for c in LABEL_CANDIDATES:
        vals = [per_set[n][c].get(a, float("nan")) for n in names for a in alphas]
        cells = " | ".join(f"{v:+.4f}" for v in vals)
        print(f"| {c} | {cells} | {min(vals):+.4f} | {sum(vals) / len(vals):+.4f} |")
    print()
    held: dict[str, Any] = {}
    chosen_on_others, final = leave_one_dataset_out(per_set, choose)
    for n, c in chosen_on_others.items():
        held[n] = {"chosen": c, "gains": per_set[n][c]}
        shown = ", ".join(f"alpha {a:g}: {v:+.4f}" for a, v in per_set[n][c].items())
        print(f"- held out {n}: chosen on the others: **{c}**; on {n}, gain over the zero-label default: {shown}")
    print(f"\nChosen on all datasets (shipped): **{final}**")
    if out_json:
        write_choice(out_json, per_set, held, final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
