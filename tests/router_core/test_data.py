"""Loading the shared format and RouterBench tables; malformed input names file and line."""

import gzip
import json

import numpy as np
import pytest

from router_core import data
from router_core.data import DataError


def write_records(folder, records, models=None):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "records.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    if models is not None:
        (folder / "models.json").write_text(json.dumps([{"name": m} for m in models]))
    return folder


def test_shared_real_data_shapes(shared_data):
    d = data.load(shared_data / "routerbench-subset")
    assert len(d.models) == 11 and len(d) == 3162
    assert set(d.task_names) == {"arc-challenge", "mbpp", "winogrande"}
    assert d.costs is not None and np.all(d.mean_cost() > 0)
    assert set(np.unique(d.labels[~np.isnan(d.labels)])) <= {0.0, 1.0}
    # the embedded text is the question, not the 5-shot prompt with its shared prefix
    arc = [p for p, t in zip(d.prompts, d.tasks) if t == "arc-challenge"]
    assert len(set(p[:200] for p in arc)) > 0.9 * len(arc)


def test_missing_labels_are_nan_and_graded_binarised(tmp_path):
    f = write_records(tmp_path / "s", [
        {"task": "a", "prompt": "p1", "correct": {"m1": 0.7, "m2": 0.2}},
        {"task": "a", "prompt": "p2", "correct": {"m1": 1}},
        {"task": "a", "prompt": "p1", "correct": {"m1": 0, "m2": 0}},  # duplicate: dropped
        {"task": "b", "prompt": "p1", "question": "q1", "correct": "{'m2': True}"},
    ], models=["m1", "m2"])
    d = data.load(f, threshold=0.5)
    assert d.prompts == ["p1", "p2", "q1"]
    assert np.array_equal(np.nan_to_num(d.labels, nan=-1), [[1, 0], [1, -1], [-1, 1]])
    assert data.load(f, threshold=0.8).labels[0, 0] == 0.0
    assert data.load(f, text_field="prompt").prompts == ["p1", "p2", "p1"]


@pytest.mark.parametrize("line,needle", [
    ("{not json", "invalid JSON"),
    (json.dumps({"task": "a", "correct": {"m": 1}}), "missing field 'prompt'"),
    (json.dumps({"task": "a", "prompt": "x", "correct": {"m": 3}}), "outside [0, 1]"),
    (json.dumps({"task": "a", "prompt": "x", "correct": [1]}), "must be an object"),
    (json.dumps({"task": "a", "prompt": "", "correct": {"m": 1}}), "non-empty"),
])
def test_malformed_record_names_file_and_line(tmp_path, line, needle):
    ok = json.dumps({"task": "a", "prompt": "fine", "correct": {"m": 1}})
    f = write_records(tmp_path / "bad", [ok, ok.replace("fine", "fine2"), line])
    with pytest.raises(DataError) as exc:
        data.load(f)
    assert "records.jsonl.gz:3" in str(exc.value) and needle in str(exc.value)


def test_routerbench_table_csv_and_pickle(tmp_path, shared_data):
    pd = pytest.importorskip("pandas")
    d = data.load(shared_data / "routerbench-subset").sample_tasks(["mbpp", "winogrande"], per_task=20)
    cols = {"sample_id": [f"s{i}" for i in range(len(d))], "prompt": [str([p]) for p in d.prompts],
            "eval_name": list(d.tasks)}
    for j, m in enumerate(d.models):
        cols[m] = d.labels[:, j]
        cols[f"{m}|total_cost"] = d.costs[:, j]
        cols[f"{m}|model_response"] = ["..."] * len(d)
    df = pd.DataFrame(cols)
    df.to_csv(tmp_path / "rb.csv", index=False)
    df.to_pickle(tmp_path / "rb.pkl")
    for path in (tmp_path / "rb.csv", tmp_path / "rb.pkl"):
        t = data.load(path)
        assert t.models == d.models
        assert t.prompts == d.prompts  # list literal parsed back to text
        assert np.array_equal(t.labels, d.labels)
        assert np.allclose(t.mean_cost(), d.mean_cost())
    df[d.models[0]] = df[d.models[0]].astype(object)
    df.loc[3, d.models[0]] = "oops"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv:5: model"):
        data.load(tmp_path / "bad.csv")


def test_merge_and_holdout_field(shared_data):
    a = data.load(shared_data / "routerbench-subset").sample_tasks(["mbpp"], per_task=5)
    b = data.load(shared_data / "routellm-gpt4-mixtral").sample_tasks(["gsm8k"], per_task=5)
    m = data.merge([a, b])
    assert len(m) == 10 and "gpt-4-1106-preview" in m.models
    assert len(m.models) == len(set(a.models) | set(b.models))
    # a model absent from one set is unlabelled there
    j = m.models.index("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert np.all(np.isnan(m.labels[:5, j])) and not np.any(np.isnan(m.labels[5:, j]))
    assert list(m.with_holdout("benchmark").tasks[:5]) == ["mbpp"] * 5
    with pytest.raises(DataError, match="no per-prompt field"):
        m.with_holdout("nope")
