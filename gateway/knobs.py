"""The routing knobs of one request: its alias's, overridden by ``x-router-*`` request headers.

An alias in ``router.aliases`` may carry its own cost floor (``epsilon``), ``lambda`` and
``method`` (e.g. ``router`` for quality, ``router-eco`` with a floor); ``x-router-epsilon``,
``x-router-lambda`` and ``x-router-method`` set them per request. Every knob is checked against
what the router artifact can do (router_core's ``Router.check_knobs`` / ``resolve_method``) at
start-up for aliases and per request for headers: a knob that cannot apply is a start-up error
or a 400, never silently ignored. The maths stays in router_core; this module only passes knobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from router_core.router import Router

from .errors import bad_request

EPSILON_HEADER = "x-router-epsilon"
LAMBDA_HEADER = "x-router-lambda"
METHOD_HEADER = "x-router-method"


@dataclass(frozen=True)
class Knobs:
    """How one request is decided: the cost knobs and the task-level method (None: the default's)."""

    epsilon: float | None = None
    lam: float | None = None
    method: str | None = None

    def variant(self, default: "Knobs") -> str:
        """'' when these are ``default`` (the ``router`` section's knobs), else a short stable name:
        a task's final decision is kept per variant, its running sums are shared by all."""
        parts = [f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}"
                 for name, value, base in (("e", self.epsilon, default.epsilon), ("l", self.lam, default.lam),
                                           ("m", self.method, default.method))
                 if value != base]
        return "-".join(str(p) for p in parts)

    def decide_kwargs(self, costs: np.ndarray | None) -> dict[str, Any]:
        """Router.decide's keyword arguments for these knobs."""
        return {"epsilon": self.epsilon, "lam": self.lam, "costs": costs, "method": self.method}

    def instance_kwargs(self, costs: np.ndarray | None) -> dict[str, Any]:
        """Router.decide_instance's keyword arguments (per-prompt routing has no task-level method)."""
        return {"epsilon": self.epsilon, "lam": self.lam, "costs": costs}

    def describe(self, learned: Router, costs: np.ndarray | None) -> dict[str, Any]:
        """The knobs as the ``router`` object reports them."""
        out: dict[str, Any] = {"routing_method": learned.resolve_method(self.method)}
        if self.epsilon is not None:
            out["epsilon"] = self.epsilon
        if self.lam is not None:
            out["lambda"] = self.lam
        unit = learned.cost_unit(costs)
        if unit is not None:
            out["cost_unit"] = unit
        return out


def check(knobs: Knobs, learned: Router, costs: np.ndarray | None) -> Knobs:
    """``knobs`` normalised (floats; the method resolved, None where it is the router's own);
    ValueError naming what cannot apply to this artifact."""
    learned.check_knobs(knobs.epsilon, knobs.lam, costs)
    method = None if knobs.method is None else learned.resolve_method(knobs.method)
    return Knobs(None if knobs.epsilon is None else float(knobs.epsilon),
                 None if knobs.lam is None else float(knobs.lam),
                 None if method == learned.params.method else method)  # None: the router's own


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise bad_request(f"{name} must be a number >= 0, not {raw!r}", param=name, code="invalid_header")
    return value


def from_headers(base: Knobs, headers: Mapping[str, str], learned: Router, costs: np.ndarray | None) -> Knobs:
    """``base`` (the alias's knobs) with the request's ``x-router-*`` headers applied; 400 when a
    header is malformed or asks for something this artifact cannot do."""
    epsilon, lam = _number(headers, EPSILON_HEADER), _number(headers, LAMBDA_HEADER)
    method = headers.get(METHOD_HEADER) or None
    if epsilon is None and lam is None and method is None:
        return base
    knobs = Knobs(base.epsilon if epsilon is None else epsilon, base.lam if lam is None else lam,
                  base.method if method is None else method)
    try:
        return check(knobs, learned, costs)
    except ValueError as exc:
        header = METHOD_HEADER if method is not None and "method" in str(exc) else (
            EPSILON_HEADER if epsilon is not None else LAMBDA_HEADER)
        raise bad_request(f"{header}: {exc}", param=header, code="invalid_header") from None
