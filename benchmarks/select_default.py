"""Apply the default-method selection rule of docs/results.md to evaluation reports.

Usage: select_default.py NAME=report.json [NAME=report.json ...] [--json OUT]

Each report is an ``llm-router eval`` JSON of one shared dataset held out by task. For every dataset
in turn (leave one dataset out), the rule looks only at the *other* datasets: each candidate's worst
gain over BMA there (accuracy - BMA accuracy); the largest worst gain wins, ties within 0.001 go to
the larger mean share of the BMA-to-Oracle gap closed, then to the order of CANDIDATES. The choice on
all datasets together was the one shipped until the resampled-pools rule (select_pools.py), whose
admissible candidates are the ones this rule's table shows never below BMA by more than 0.002.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not benchmarks/router_core.py

from router_core.evaluate import CANDIDATE_METHOD, CANDIDATES

TIE = 0.001
T = TypeVar("T")


def gains(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(accuracy - BMA, share of the BMA-to-Oracle gap closed) per candidate."""
    m = report["methods"]
    bma, orc = m["BMA"]["accuracy"], m["Oracle"]["accuracy"]
    room = orc - bma
    return {c: (m[c]["accuracy"] - bma, (m[c]["accuracy"] - bma) / room if room > 1e-9 else 0.0)
            for c in CANDIDATES}


def choose(per_set: dict[str, dict[str, tuple[float, float]]]) -> str:
    def key(c: str) -> tuple[float, float, int]:
        worst = min(g[c][0] for g in per_set.values())
        mean_gap = sum(g[c][1] for g in per_set.values()) / len(per_set)
        return (round(worst / TIE), mean_gap, -CANDIDATES.index(c))
    return max(CANDIDATES, key=key)


def split_json_out(argv: list[str]) -> tuple[list[str], Path | None]:
    """The arguments without ``--json OUT``, and OUT (None without it); select_labels.py shares it."""
    if "--json" not in argv:
        return argv, None
    i = argv.index("--json")
    return argv[:i] + argv[i + 2:], Path(argv[i + 1])


def leave_one_dataset_out(per_set: dict[str, T], choose: Callable[[dict[str, T]], str]) -> tuple[dict[str, str], str]:
    """For each dataset, what ``choose`` picks on the others (on all of them when there is no other),
    and its pick on all datasets: the shipped one. select_labels.py and select_feedback.py share it."""
    held = {n: choose({m: g for m, g in per_set.items() if m != n} or per_set) for n in per_set}
    return held, choose(per_set)


def write_choice(path: Path, per_set: dict[str, Any], held: dict[str, Any], chosen: str) -> None:
    """The ``--json`` file of select_labels.py and select_feedback.py."""
    path.write_text(json.dumps({"per_dataset": per_set, "held_out": held, "chosen": chosen}, indent=2),
                    encoding="utf-8")


def load_report(path: str) -> dict[str, Any]:
    """An ``llm-router eval`` JSON report."""
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))


def main(argv: list[str]) -> int:
    argv, out_json = split_json_out(argv)
    per_set = {}
    for arg in argv:
        name, path = arg.split("=", 1)
        per_set[name] = gains(load_report(path))
    names = list(per_set)
    print("| candidate | " + " | ".join(names) + " | worst | mean gap closed |")
    print("|---|" + "---|" * (len(names) + 2))
    for c in CANDIDATES:
        cells = [f"{per_set[n][c][0]:+.4f}" for n in names]
        worst = min(per_set[n][c][0] for n in names)
        mean_gap = sum(per_set[n][c][1] for n in names) / len(names)
        print(f"| {c} | " + " | ".join(cells) + f" | {worst:+.4f} | {mean_gap:.1%} |")
    print()
    folds = {}
    chosen_on_others, final = leave_one_dataset_out(per_set, choose)
    for held, chosen in chosen_on_others.items():
        g, share = per_set[held][chosen]
        folds[held] = {"chosen": chosen, "gain_over_bma": g, "gap_closed": share}
        print(f"- held out {held}: chosen on the others: **{chosen}**; on {held}: {g:+.4f} over BMA, "
              f"{share:.1%} of the gap closed")
    print(f"\nChosen on all datasets: **{final}** (method `{CANDIDATE_METHOD[final]}`; what ships is the choice of "
          "the resampled-pools rule, benchmarks/select_pools.py, among the candidates this table admits)")
    if out_json:
        out_json.write_text(json.dumps({"candidates": list(CANDIDATES), "per_dataset": per_set,
                                        "leave_one_dataset_out": folds, "shipped": final,
                                        "method": CANDIDATE_METHOD[final]}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
