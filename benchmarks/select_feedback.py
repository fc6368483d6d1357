"""Apply the feedback-policy rule of docs/results.md ("Feedback that measures the predictors").

Usage: select_feedback.py REPORT.json [REPORT.json ...] [--json OUT]

Each REPORT is an ``llm-router replay`` report (no exploration) of one shared dataset, policy and
feedback rate (``benchmarks/replay_sweep.py --policies`` writes them). A policy's score on a dataset
is its replayed accuracy minus the static default's at F = 0.2; the largest worst score wins, ties
within 0.001 go to the larger mean gain at F = 1.0, then to the order of ``feedback.POLICIES``. Leave
one dataset out: the rule applied to the others names the policy reported on each dataset.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core.feedback import POLICIES
# the script's own folder is on sys.path
from select_default import leave_one_dataset_out, load_report, split_json_out, write_choice

TIE = 0.001
RATE, FULL = 0.2, 1.0

Gains = dict[str, dict[float, float]]  # policy -> feedback rate -> gain over the static default


def gains(reports: list[dict[str, Any]]) -> dict[str, Gains]:
    """dataset -> policy -> rate -> replayed accuracy minus the static default's (same streams)."""
    out: dict[str, Gains] = {}
    for r in reports:
        if r.get("explore", 0.0):
            continue
        m = r["methods"]
        out.setdefault(r["dataset"], {}).setdefault(r.get("policy", "outcome"), {})[float(r["feedback_rate"])] = (
            m["feedback"]["accuracy"] - m["static"]["accuracy"])
    return out


def choose(per_set: dict[str, Gains]) -> str:
    def key(p: str) -> tuple[float, float, int]:
        at_rate = [g[p][RATE] for g in per_set.values()]
        at_full = [g[p].get(FULL, 0.0) for g in per_set.values()]
        return (round(min(at_rate) / TIE), sum(at_full) / len(at_full), -POLICIES.index(p))
    return max(POLICIES, key=key)


def main(argv: list[str]) -> int:
    argv, out_json = split_json_out(argv)
    per_set = gains([load_report(p) for p in argv])
    names = list(per_set)
    print("| policy | " + " | ".join(f"{n} F={RATE:g}" for n in names) + " | worst | "
          + " | ".join(f"{n} F={FULL:g}" for n in names) + " | mean F=1 |")
    print("|---|" + "---|" * (2 * len(names) + 2))
    for p in POLICIES:
        at_rate = [per_set[n][p][RATE] for n in names]
        at_full = [per_set[n][p].get(FULL, float("nan")) for n in names]
        print(f"| {p} | " + " | ".join(f"{v:+.4f}" for v in at_rate) + f" | {min(at_rate):+.4f} | "
              + " | ".join(f"{v:+.4f}" for v in at_full) + f" | {sum(at_full) / len(at_full):+.4f} |")
    print()
    held: dict[str, Any] = {}
    chosen_on_others, final = leave_one_dataset_out(per_set, choose)
    for n, c in chosen_on_others.items():
        held[n] = {"chosen": c, "gains": per_set[n][c]}
        print(f"- held out {n}: chosen on the others: **{c}**; on {n}, gain over the static default: "
              f"F={RATE:g} {per_set[n][c][RATE]:+.4f}, F={FULL:g} {per_set[n][c].get(FULL, float('nan')):+.4f}")
    print(f"\nChosen on all datasets (shipped): **{final}**")
    if out_json:
        write_choice(out_json, per_set, held, final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
