"""What the caller is told: the x-router-* headers and the ``router`` object."""

from __future__ import annotations

from gateway.explain import headers, router_object
from gateway.failures import Failure
from gateway.forward import Outcome
from gateway.routing import Choice
from router_core.decision import Decision

DECISION = Decision(model="a", method="S3", models=["a", "b"], ranking=["a", "b"], n=4,
                    s3={"a": 0.8, "b": 0.6}, p_hat={"a": 0.9, "b": 0.7})


def test_a_fallback_is_explained_in_headers_and_body():
    outcome = Outcome("b", failures=[Failure("a", "timeout", 504, True, "a: upstream timed out")])
    choice = Choice(DECISION, "final", "t1")
    h = headers(choice, "v1", "b", 0.25, outcome)
    assert h == {"x-router-model": "b", "x-router-decision": "final", "x-router-artifact": "v1",
                 "x-router-method": "S3", "x-router-task-id": "t1", "x-router-cost-usd": "0.25000000",
                 "x-router-attempted": "a"}
    body = router_object(choice, "v1", outcome)
    assert body["chosen_model"] == "a" and body["served_model"] == "b" and body["method"] == "S3"
    assert body["attempted"] == [{"model": "a", "error": "timeout"}]
    assert body["scores"] == DECISION.s3 and body["p_hat"] == DECISION.p_hat and body["n"] == 4


def test_an_explicit_model_has_no_scores():
    choice = Choice(Decision(model="a", method="explicit", models=["a"], ranking=["a"]), "explicit", None)
    body = router_object(choice, "v1")
    assert body == {"decision": "explicit", "method": "explicit", "chosen_model": "a", "task_id": None,
                    "artifact": "v1"}
    assert "x-router-task-id" not in headers(choice, "v1", "a", None)
