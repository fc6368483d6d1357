"""Regenerate the demo data set shipped in demo/data/mmlu-pro-demo from the shared MMLU-Pro folder.

Why: a fresh clone has no shared benchmark data, but ``make run`` must still build a router and
the demo must show routing between models of different sizes. This script is a development tool
(it is never run by ``make run``); it makes the selection reproducible: a fixed list of 12
open-weights models spanning 3.8B-398B parameters and, from the prompts every one of them
answered, 25 per MMLU-Pro category drawn with a fixed seed. The output is byte-identical for the
same source file (gzip header without a timestamp).

    python scripts/make_demo_data.py [--source ../shared/data/mmlu-pro] [--out demo/data/mmlu-pro-demo]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEED = 20240520
PER_TASK = 25
# Largest to smallest; every one has a published parameter count (params_b stands in for cost).
MODELS = [
    "jamba-1.5-large",
    "DeepSeek-Coder-V2",
    "Qwen1.5-110B",
    "Qwen1.5-72B-Chat",
    "Meta-Llama-3_1-70B-Instruct",
    "Mixtral-8x7B-Instruct-v0.1",
    "c4ai-command-r-v01",
    "Yi-34B",
    "Llama-2-13b-hf",
    "Meta-Llama-3_1-8B-Instruct",
    "mathstral-7B",
    "Phi-3-mini-4k-instruct",
]
# Figures of the whole source set that do not describe the subset are left out of models.json.
FULL_SET_ONLY = ("pred_unparsed", "dropped_version_mismatch", "rescored_answer_key_changed")


def default_source() -> Path:
    sys.path.insert(0, str(REPO))
    from router_core.data import shared_data_root

    return shared_data_root() / "mmlu-pro"


def select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PER_TASK prompts per task, seeded, among prompts labelled for every model; source order kept."""
    complete = [i for i, r in enumerate(rows) if all(m in r["correct"] for m in MODELS)]
    by_task: dict[str, list[int]] = {}
    for i in complete:
        by_task.setdefault(rows[i]["task"], []).append(i)
    rng = random.Random(SEED)
    keep: list[int] = []
    for task in sorted(by_task):
        pool = by_task[task]
        if len(pool) < PER_TASK:
            raise SystemExit(f"{task}: only {len(pool)} fully labelled prompts, need {PER_TASK}")
        keep += rng.sample(pool, PER_TASK)
    out = []
    for i in sorted(keep):
        rec = dict(rows[i])
        rec["correct"] = {m: rec["correct"][m] for m in MODELS}
        if "output_chars" in rec:
            rec["output_chars"] = {m: rec["output_chars"][m] for m in MODELS if m in rec["output_chars"]}
        out.append(rec)
    return out


def model_entries(source_info: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The source's model entries for MODELS, with counts and means recomputed on the subset."""
    by_name = {m["name"]: m for m in source_info}
    missing = [m for m in MODELS if m not in by_name]
    if missing:
        raise SystemExit(f"models.json of the source lacks {missing}")
    out = []
    for name in MODELS:
        entry = {k: v for k, v in by_name[name].items() if k not in FULL_SET_ONLY}
        labels = [r["correct"][name] for r in records]
        chars = [r["output_chars"][name] for r in records if name in r.get("output_chars", {})]
        entry["n_labelled_prompts"] = len(labels)
        entry["mean_correct"] = round(sum(labels) / len(labels), 4)
        if chars:
            entry["mean_output_chars"] = round(sum(chars) / len(chars), 1)
        out.append(entry)
    return out


def write(records: list[dict[str, Any]], models: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "records.jsonl.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for rec in records:
                gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    (out / "models.json").write_text(json.dumps(models, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=None, help="the shared mmlu-pro folder")
    ap.add_argument("--out", type=Path, default=REPO / "demo" / "data" / "mmlu-pro-demo")
    args = ap.parse_args()
    source = args.source or default_source()
    rec_path = source / "records.jsonl.gz"
    if not rec_path.exists():
        raise SystemExit(f"{rec_path}: not found (set ROUTER_SHARED_DATA or pass --source)")
    digest = hashlib.sha256(rec_path.read_bytes()).hexdigest()
    with gzip.open(rec_path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    records = select(rows)
    models = model_entries(json.loads((source / "models.json").read_text(encoding="utf-8")), records)
    write(records, models, args.out)
    tasks = sorted({r["task"] for r in records})
    print(f"{args.out}: {len(records)} prompts, {len(tasks)} tasks, {len(models)} models "
          f"(source records.jsonl.gz sha256 {digest})")


if __name__ == "__main__":
    main()
