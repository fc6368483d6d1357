"""The replay evaluation (router_core.replay): synthetic streams with known answers, and a small
real subset end to end (library and CLI)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from router_core import data, embed
from router_core import feedback as fb
from router_core.replay import prepare, replay, replay_task
from shared_folder import write_shared_folder

TASKS = ["gsm8k", "mbpp", "arc_challenge", "mmlu-high_school_psychology", "humaneval"]


def _stream(acc: list[float], n: int = 400, seed: int = 0) -> np.ndarray:
    """n prompts whose model m is right on exactly round(acc[m] * n) of them, shuffled."""
    rng = np.random.default_rng(seed)
    cols = []
    for a in acc:
        col = np.zeros(n)
        col[: int(round(a * n))] = 1.0
        cols.append(rng.permutation(col))
    return np.stack(cols, axis=1)


def test_without_feedback_the_stream_is_the_static_decision():
    labels = _stream([0.3, 0.9])
    belief = fb.Belief(np.array([0.7, 0.68]), 0.05, 0.1)
    t = replay_task(labels, belief, 0, 0, 1, 0.0, fb.FeedbackParams(), np.random.default_rng(1), ["a", "b"], "t")
    assert t.revisions == 0 and t.final == 0
    assert t.accuracy["feedback"] == pytest.approx(0.3) == t.accuracy["static"]
    assert t.accuracy["Oracle"] == pytest.approx(0.9)


def test_a_wrong_static_pick_is_revised_once_exploration_gives_the_other_model_a_record():
    labels = _stream([0.3, 0.9])
    belief = fb.Belief(np.array([0.7, 0.68]), 0.05, 0.1)
    # feedback on every answer, but only the served model's: the poor record is read as a hard task
    t = replay_task(labels, belief, 0, 0, 1, 1.0, fb.FeedbackParams(), np.random.default_rng(1), ["a", "b"], "t")
    assert t.revisions == 0
    # 5 % exploration: model b earns a record, the decision moves to it, once, and stays
    t = replay_task(labels, belief, 0, 0, 1, 1.0, fb.FeedbackParams(explore=0.05), np.random.default_rng(1),
                    ["a", "b"], "t")
    assert t.revisions == 1 and t.final == 1 and t.history[0]["to"] == "b"
    assert t.history[0]["prob_better"] >= 0.9 and t.history[0]["outcomes"]["a"] >= 20
    assert t.accuracy["static"] == pytest.approx(0.3)
    assert 0.6 < t.accuracy["feedback"] < t.accuracy["Oracle"]
    assert 0 < t.explored < 0.1 * len(labels)


def test_a_right_static_pick_is_kept_when_the_evidence_agrees():
    labels = _stream([0.8, 0.7, 0.75])
    belief = fb.Belief(np.array([0.7, 0.68, 0.69]), 0.05, 0.1)
    t = replay_task(labels, belief, 0, 0, 0, 1.0, fb.FeedbackParams(explore=0.05), np.random.default_rng(2),
                    ["a", "b", "c"], "t")
    assert t.revisions == 0 and t.final == 0


def test_exploration_stops_once_the_explored_models_record_rules_them_out():
    # the served model is right 80 % of the time, the others 20 % and 30 %; exploring for as long as the
    # task runs keeps paying for answers the evidence has long ruled out, the default stops
    labels = _stream([0.8, 0.2, 0.3], n=1000)
    belief = fb.Belief(np.array([0.7, 0.68, 0.69]), 0.05, 0.1)
    runs = {resolved: replay_task(labels, belief, 0, 0, 0, 1.0,
                                  fb.FeedbackParams(explore=0.1, explore_resolved=resolved),
                                  np.random.default_rng(3), ["a", "b", "c"], "t")
            for resolved in (True, False)}
    assert all(t.revisions == 0 and t.final == 0 for t in runs.values())
    assert 0.08 * len(labels) < runs[False].explored  # about 10 % of the stream
    assert 0 < runs[True].explored < 0.03 * len(labels)
    assert runs[True].accuracy["feedback"] > runs[False].accuracy["feedback"]


@pytest.fixture(scope="module")
def subset(shared_data):
    return data.load(shared_data / "routerdc-7b").sample_tasks(TASKS, per_task=40, seed=1)


def test_replay_on_a_real_subset(subset):
    prep = prepare(subset, embed.get_encoder().encode(subset.prompts))
    rep = replay(prep, 0.5, explore=0.05, repeats=2)
    assert rep["dataset"] == subset.name and rep["feedback_rate"] == 0.5 and rep["explore"] == 0.05
    m = rep["methods"]
    assert set(m) == {"static", "feedback", "BMA", "Oracle"}
    assert set(m["feedback"]) == {"accuracy", "revisions_per_task", "explore_share"}
    assert 0.0 < m["feedback"]["explore_share"] < 0.15
    assert len(rep["tasks"]) == len(TASKS)
    for t in rep["tasks"]:
        acc = t["accuracy"]
        # the fixed policies are scored on the whole stream: the Oracle is the best fixed model
        assert acc["static"] <= acc["Oracle"] + 1e-9 and acc["BMA"] <= acc["Oracle"] + 1e-9
        assert t["revisions"] == len(t["history"]) <= 2
    # the static policy is the evaluation's default pick, so with no feedback the loop changes nothing
    quiet = replay(prep, 0.0, repeats=1)
    assert quiet["methods"]["feedback"]["accuracy"] == pytest.approx(quiet["methods"]["static"]["accuracy"])
    assert quiet["methods"]["feedback"]["revisions_per_task"] == 0


def test_provisional_picks_serve_the_first_prompts_and_are_never_revised():
    labels = _stream([0.3, 0.9])
    belief = fb.Belief(np.array([0.7, 0.68]), 0.05, 0.1)
    order = np.arange(len(labels))
    # the first 3 prompts served by model 1 (provisional), then model 0 (final); no feedback
    t = replay_task(labels, belief, 0, 0, 1, 0.0, fb.FeedbackParams(), np.random.default_rng(1), ["a", "b"], "t",
                    order=order, provisional=[1, 1, 1])
    want = (labels[:3, 1].sum() + labels[3:, 0].sum()) / len(labels)
    assert t.accuracy["static"] == pytest.approx(want) == t.accuracy["feedback"]
    # feedback on every answer: the provisional answers count for model 1, but only the final decision is
    # revised, and never before it exists (a reviser that revises whenever asked shows when it is asked)
    asked: list[int] = []

    def eager(served, correct, counted, revisions, agree, judged):
        asked.append(int(counted.sum()))
        return None

    replay_task(labels, belief, 0, 0, 1, 1.0, fb.FeedbackParams(), np.random.default_rng(1), ["a", "b"], "t",
                reviser=eager, order=order, provisional=[1, 1, 1])
    assert asked[0] == 4 and len(asked) == len(labels) - 3


def test_replay_with_the_gateways_phases_on_a_real_subset(subset):
    prep = prepare(subset, embed.get_encoder().encode(subset.prompts))
    rep = replay(prep, 1.0, repeats=2, min_samples=5)
    assert rep["min_samples"] == 5
    m = rep["methods"]
    assert set(m) == {"static", "feedback", "BMA", "Oracle"}
    for t in rep["tasks"]:
        # static is the stream's 4 provisional picks, then the final one: those 4 answers are all it can
        # win over a fixed model, the Oracle's included
        assert t["accuracy"]["static"] <= t["accuracy"]["Oracle"] + 4 / t["n"] + 1e-9
        assert t["revisions"] == len(t["history"]) <= 2
    with pytest.raises(ValueError):
        replay(prep, 1.0, min_samples=0)


def test_cli_replay(subset, tmp_path):
    from router_core.cli import app

    folder = write_shared_folder(subset, tmp_path / "data")
    runner = CliRunner()
    res = runner.invoke(app, ["replay", "--data", str(folder), "--feedback-rate", "0.2", "--out",
                              str(tmp_path / "rep.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["feedback_rate"] == 0.2 and f"static {rep['methods']['static']['accuracy']:.4f}" in res.stdout
    res = runner.invoke(app, ["replay", "--data", str(folder), "--feedback-rate", "1.5", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--feedback-rate" in res.output
