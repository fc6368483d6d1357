"""Several deployments under one model_name: balancing, skipping a failing one, the degraded report."""

from __future__ import annotations

import random

from gateway.deployments import Deployment, DeploymentPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(balancing="simple-shuffle", n=2, **kw) -> tuple[DeploymentPool, list[Deployment], Clock]:
    deps = [Deployment("m", i, {"model": f"openai/m{i}", "api_base": f"http://h{i}/v1", "api_key": "sk-secret"})
            for i in range(n)] + [Deployment("solo", 0, {"model": "openai/solo"})]
    clock = Clock()
    return DeploymentPool(deps, balancing, rng=random.Random(0), clock=clock, **kw), deps, clock


def test_shuffle_spreads_requests_over_the_deployments():
    p, deps, _ = pool(n=3)
    firsts = [p.ordered("m")[0].index for _ in range(300)]
    counts = [firsts.count(i) for i in range(3)]
    assert all(60 < c < 140 for c in counts), counts


def test_least_busy_prefers_the_deployment_with_fewest_requests_in_flight():
    p, deps, _ = pool("least-busy", n=3)
    p.started(deps[0])
    p.started(deps[0])
    p.started(deps[2])
    assert [d.index for d in p.ordered("m")] == [1, 2, 0]
    p.finished(deps[0], True)
    p.finished(deps[0], True)
    assert p.ordered("m")[-1].index == 2


def test_retries_go_to_the_next_deployment_and_fallbacks_follow():
    p, deps, _ = pool()
    plan = p.plan(["m", "solo", "unknown"], tries=2)
    assert [d.model for d in plan] == ["m", "m", "solo", "solo"]
    assert plan[0] is not plan[1]  # the retry is on the other deployment


def test_a_failing_deployment_is_put_last_until_its_cooldown_ends():
    p, deps, clock = pool(cooldown_s=10, allowed_fails=2)
    p.started(deps[0])
    p.finished(deps[0], False)
    assert any(p.ordered("m")[0] is deps[0] for _ in range(50))  # one failure: not yet cooled down
    p.started(deps[0])
    p.finished(deps[0], False)
    assert all(p.ordered("m")[0] is deps[1] for _ in range(50))
    clock.now += 11
    assert any(p.ordered("m")[0] is deps[0] for _ in range(50))


def test_a_single_deployment_is_never_cooled_down():
    p, deps, _ = pool(allowed_fails=1)
    solo = p.by_model["solo"][0]
    p.finished(solo, False)
    assert solo.down_until == 0.0 and p.plan(["solo"], 1) == [solo]


def test_degraded_lists_deployments_whose_recent_attempts_all_failed_without_keys():
    p, deps, clock = pool()
    for _ in range(3):
        p.finished(deps[0], False)
    p.finished(deps[1], False)
    p.finished(deps[1], True)
    p.finished(deps[1], None)  # the caller's fault: not counted
    clock.now += 2
    report = p.degraded()
    assert report == [{"model": "m", "api_base": "http://h0/v1", "failed_attempts": 3, "last_failure_s_ago": 2.0}]
    assert "sk-secret" not in repr(report) and deps[0].label == "m (http://h0/v1)"
    p.finished(deps[0], True)
    assert p.degraded() == []
