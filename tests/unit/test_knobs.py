"""Per-request routing knobs: an alias's, request headers over them, and what cannot apply refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from doubles import MODELS, prompts
from gateway.errors import GatewayError
from gateway.knobs import Knobs, check, from_headers
from router_core.data import BenchmarkData
from router_core.router import build_from_vectors

SIZES = {"big": 70.0, "small": 8.0}  # "code" has no published size: counts as the largest


def sized_router(encoder, with_sizes=True):
    texts = prompts("math", 20) + prompts("prose", 20)
    labels = np.ones((len(texts), len(MODELS)), dtype=np.float32)  # every model right: all tie
    info = [{"name": m, "params_b": SIZES.get(m)} for m in MODELS] if with_sizes else []
    data = BenchmarkData("sized", list(MODELS), texts, np.array(["math"] * 20 + ["prose"] * 20, dtype=object),
                         labels, model_info=info)
    return build_from_vectors(data, encoder.encode(texts))


def test_model_size_stands_in_for_cost_and_ties_go_to_the_smaller_model(encoder):
    r = sized_router(encoder)
    assert r.cost_unit() == "params_b" and list(r.sizes) == [70.0, 8.0, 70.0]
    agg = r.aggregate(encoder.encode(prompts("math", 5, start=50)))
    assert r.decide(agg, epsilon=0.0).model == "small"  # all tied, a knob on: the smallest
    assert r.decide(agg).model == r.models[0]  # knobs off: the paper's argmax, ties to the first
    assert r.decide_instance(np.ones(3)).model == "small"
    assert r.cost_unit(np.array([1.0, 2.0, 3.0])) == "usd_per_query"


def test_a_knob_that_cannot_apply_is_refused(encoder, learned):
    assert learned.cost_unit() is None  # no prices, no sizes
    with pytest.raises(ValueError, match="epsilon needs costs"):
        check(Knobs(epsilon=0.05), learned, None)
    with pytest.raises(ValueError, match="lambda is in USD"):
        check(Knobs(lam=5.0), sized_router(encoder), None)
    assert check(Knobs(lam=5.0), learned, np.array([1.0, 2.0, 3.0])).lam == 5.0  # prices from the config
    bare = dataclasses.replace(learned, calibration=None)
    with pytest.raises(ValueError, match="without a calibration"):
        check(Knobs(method="calibrated"), bare, None)
    with pytest.raises(ValueError, match="method must be one of"):
        check(Knobs(method="best"), learned, None)


def test_headers_override_the_alias_and_bad_ones_are_a_400(encoder):
    r = sized_router(encoder)
    eco = check(Knobs(epsilon=0.05), r, None)
    assert from_headers(eco, {}, r, None) is eco
    assert from_headers(eco, {"x-router-epsilon": "0.2"}, r, None) == Knobs(epsilon=0.2)
    got = from_headers(eco, {"x-router-method": "calibrated"}, r, None)
    assert got == Knobs(epsilon=0.05, method="calibrated")
    assert from_headers(Knobs(), {"x-router-method": r.params.method}, r, None) == Knobs()  # the router's own
    for headers, param in [({"x-router-epsilon": "lots"}, "x-router-epsilon"),
                           ({"x-router-epsilon": "-1"}, "x-router-epsilon"),
                           ({"x-router-lambda": "3"}, "x-router-lambda"),  # sizes only: no USD prices
                           ({"x-router-method": "magic"}, "x-router-method")]:
        with pytest.raises(GatewayError) as info:
            from_headers(eco, headers, r, None)
        assert info.value.status == 400 and info.value.param == param


def test_each_set_of_knobs_keeps_its_own_final_decision_key():
    default = Knobs()
    assert Knobs().variant(default) == ""
    assert Knobs(epsilon=0.05).variant(default) == "e0.05"
    assert Knobs(epsilon=0.05, method="calibrated").variant(default) == "e0.05-mcalibrated"
    assert Knobs(epsilon=0.05).variant(Knobs(epsilon=0.05)) == ""
