"""The demo data shipped in the repository: what `make run` builds from on a fresh clone."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from router_core import data

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo" / "data" / "mmlu-pro-demo"


def test_demo_data_loads_with_every_category_and_sized_models():
    d = data.load(DEMO)
    assert len(d) == 350
    assert sorted(set(d.tasks)) == sorted(f"mmlu_pro-{c}" for c in (
        "biology business chemistry computer_science economics engineering health history law math "
        "other philosophy physics psychology").split())
    assert all(np.sum(d.tasks == t) == 25 for t in d.task_names)
    assert len(d.models) == 12 and not np.isnan(d.labels).any()
    sizes = [m["params_b"] for m in d.model_info]
    assert all(isinstance(s, (int, float)) for s in sizes) and max(sizes) / min(sizes) > 50
    # models.json describes this subset, not the source set it came from
    for j, m in enumerate(d.model_info):
        assert m["n_labelled_prompts"] == 350
        assert abs(m["mean_correct"] - float(d.labels[:, j].mean())) < 1e-4


def test_demo_data_readme_names_source_and_licence():
    text = (DEMO / "README.md").read_text(encoding="utf-8")
    assert "TIGER-AI-Lab/MMLU-Pro" in text and "Apache License 2.0" in text
    assert "scripts/make_demo_data.py" in text


def test_generator_reproduces_the_shipped_files(shared_data, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_data.py"),
                    "--source", str(shared_data / "mmlu-pro"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("records.jsonl.gz", "models.json"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name
    assert json.loads((tmp_path / "models.json").read_text())[0]["name"] == "jamba-1.5-large"
