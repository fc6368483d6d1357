"""The gateway's YAML configuration: one pydantic schema, validated once at start-up.

The layout follows LiteLLM Proxy's ``model_list`` so existing configs carry over (several entries
under one ``model_name`` are deployments of one model, load-balanced), plus the sections this
gateway adds (``router``, ``redis``, ``auth``, ``limits``, ``upstreams``, ``tracing``, ``feedback``). A LiteLLM Proxy
file's own sections (``litellm_settings``, ``general_settings``, ``router_settings``) are folded into
these by :mod:`gateway.litellm_compat`, with a warning for each key that does not apply here. Values written as
``os.environ/NAME`` are read from the environment when the config is validated; a missing
variable fails validation with the field's path, like any other bad field.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from router_core.feedback import DEFAULT_POLICY, POLICIES

from .litellm_compat import ROUTER_ONLY_PARAMS, adopt, unknown_params

ENV_PREFIX = "os.environ/"

class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""

def resolve_env(value: Any) -> Any:
    """``os.environ/NAME`` -> the variable's value (ValueError when unset)."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    return value

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

class LitellmParams(BaseModel):
    """Passed to litellm as is (``model``, ``api_base``, ``api_key``, ...): any key litellm accepts
    (checked against litellm's own list, :func:`gateway.litellm_compat.accepted_params`)."""

    model_config = ConfigDict(extra="allow")

    model: str
    api_base: str | None = None
    api_key: str | None = None
    timeout: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _env(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: resolve_env(v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _known_keys(self) -> "LitellmParams":
        unknown = unknown_params(list(self.model_extra or {}))
        if unknown:
            raise ValueError(f"unknown litellm_params key {', '.join(unknown)}: litellm does not accept it")
        return self

    def call_kwargs(self) -> dict[str, Any]:
        """Everything litellm gets besides ``model`` and the per-request fields (LiteLLM Router's
        own keys, such as ``rpm``, stay out)."""
        return self.model_dump(exclude_none=True, exclude={"model", "timeout", *ROUTER_ONLY_PARAMS})

class ModelInfo(BaseModel):
    """Prices, for the ``x-router-cost-usd`` header and the cost metric."""

    model_config = ConfigDict(extra="allow")

    input_cost_per_token: float = Field(0.0, ge=0)
    output_cost_per_token: float = Field(0.0, ge=0)
    cost_per_request: float | None = Field(None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return ((self.cost_per_request or 0.0) + prompt_tokens * self.input_cost_per_token
                + completion_tokens * self.output_cost_per_token)

class ModelEntry(_Strict):
    model_name: str = Field(min_length=1)
    litellm_params: LitellmParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)

class Alias(_Strict):
    """A name clients send as ``model`` to be routed, with its own knobs (None: the router section's)."""

    name: str = Field(min_length=1)
    epsilon: float | None = Field(None, ge=0, description="Cost floor: the cheapest model within epsilon of the best.")
    lam: float | None = Field(None, ge=0, alias="lambda")
    method: Literal["default", "uncertain", "paper", "calibrated"] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

class RouterSettings(_Strict):
    artifact: Path
    aliases: list[Alias] = Field(default_factory=lambda: [Alias(name="router")], min_length=1,
                                 description="Names that route: a string, or {name, epsilon, lambda, method}.")
    method: Literal["default", "uncertain", "paper", "calibrated"] | None = Field(
        None, description="Task-level method for every alias (None: the artifact's own).")
    min_samples: int = Field(10, ge=1, description="Prompts a task needs before its decision is final.")
    max_labelled_samples: int = Field(200, ge=0, description="Cap on labelled samples kept per task.")
    decision_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    pending_ttl_s: int = Field(24 * 3600, ge=1, description="A task's running sums expire this long after its "
                               "last prompt while its decision is not final (then decision_ttl_s).")
    embedding_cache_max_rows: int | None = Field(
        100_000, ge=1, description="Cap on the on-disk embedding cache (oldest rows evicted); null = unbounded.")
    epsilon: float | None = Field(None, ge=0)
    lam: float | None = Field(None, ge=0, alias="lambda")
    prompt_field: Literal["last_user", "user", "all"] = "last_user"
    no_task: Literal["instance", "bma"] = Field(
        "instance", description="Requests without a task ID: per-prompt argmax, or the best model on average.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("aliases", mode="before")
    @classmethod
    def _alias_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @property
    def alias_names(self) -> list[str]:
        return [a.name for a in self.aliases]

class RedisSettings(_Strict):
    url: str | None = Field(None, description="redis:// or unix:// URL; unset = embedded redis-server.")
    cluster: bool = Field(False, description="The URL names a node of a Redis Cluster (one task's keys share a slot).")
    state_dir: Path = Path(".state/redis")
    key_prefix: str = Field("llmr", pattern=r"^[A-Za-z0-9_.:-]+$")
    socket_timeout_s: float = Field(0.5, gt=0)
    retry_after_s: float = Field(1.0, gt=0, description="While failing open, how often to try Redis again.")
    local_cache_size: int = Field(10_000, ge=1, description="In-process LRU of decisions (fail-open).")

    @field_validator("url", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        return resolve_env(v)

class AuthSettings(_Strict):
    api_keys: list[str] = Field(default_factory=list, description="Accepted bearer keys; empty = no auth.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        return [resolve_env(x) for x in v] if isinstance(v, list) else v

class Limits(_Strict):
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(5.0, gt=0, description="Longest wait for a whole request body (then 408).")
    header_timeout_s: float = Field(10.0, gt=0, description="Longest wait for a request's headers (then 408).")
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="Largest request line + headers (then 431).")
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0, description="Longest wait for the next byte/chunk.")
    total_timeout_s: float = Field(300.0, gt=0)
    retries: int = Field(1, ge=0, description="Extra attempts per model on connection errors and 5xx.")
    max_fallbacks: int = Field(2, ge=0, description="Further models tried, in router-score order.")

class UpstreamSettings(_Strict):
    """How the gateway calls the configured deployments (LiteLLM's names where it has one)."""

    drop_params: bool = Field(True, description="Parameters a provider does not take are dropped, not an error.")
    balancing: Literal["simple-shuffle", "least-busy"] = Field(
        "simple-shuffle", description="Several deployments under one model_name: random order, or fewest in flight.")
    cooldown_s: float = Field(5.0, ge=0, description="A deployment that keeps failing is tried last this long.")
    allowed_fails: int = Field(1, ge=1, description="Consecutive failures before its cooldown.")


class TracingSettings(_Strict):
    """OpenTelemetry traces (gateway/tracing.py): off unless ``endpoint`` or OTEL_EXPORTER_OTLP_ENDPOINT is set."""

    enabled: bool = Field(True, description="false: no traces, whatever the environment says.")
    endpoint: str | None = Field(None, description="OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 "
                                                   "(/v1/traces is added); unset: OTEL_EXPORTER_OTLP_ENDPOINT.")
    service_name: str | None = Field(None, description="service.name; unset: OTEL_SERVICE_NAME, else llm-router.")
    sample_ratio: float | None = Field(None, ge=0, le=1, description="Share of new traces kept (a client's "
                                       "sampled traceparent is followed); unset: OTEL_TRACES_SAMPLER, else all.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with each export (a collector's auth).")
    timeout_s: float | None = Field(None, gt=0, description="Per export request; unset: the SDK's 10 s.")

    @field_validator("endpoint", mode="before")
    @classmethod
    def _endpoint(cls, v: Any) -> Any:
        v = resolve_env(v)
        if isinstance(v, str) and v and not v.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL of an OTLP/HTTP collector")
        return v or None

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        return {k: resolve_env(x) for k, x in v.items()} if isinstance(v, dict) else v


class EmbeddingSettings(_Strict):
    backend: Literal["onnx", "torch"] = Field(
        "onnx", description="Sentence encoder: onnx (ONNX Runtime, no torch needed; its exported graph must exist "
                            "or torch be installed to export it) or torch (sentence-transformers).")
    batch: bool = Field(True, description="Embed concurrent requests' prompts together (gateway/embed_batcher.py); "
                                          "false: each request embeds alone in its own thread.")
    batch_window_ms: float = Field(2.0, ge=0, le=100, description=(
        "Longest a prompt waits for others to join its batch (from the oldest waiting prompt; only right "
        "after a batch: an idle gateway embeds a lone prompt at once)."))
    batch_max: int = Field(32, ge=1, le=1024, description="Prompts per batch at most (a full batch goes at once).")


class FeedbackSettings(_Strict):
    """Outcome feedback (gateway/feedback.py): request IDs, ``POST /v1/router/feedback`` and the
    revision of a task's final decision by router_core's rule (router_core/feedback.py, whose
    defaults these are)."""

    enabled: bool = Field(True, description="Keep a record per routed request of a task, so that its "
                                            "outcome can be fed back (x-router-request-id).")
    ttl_s: int = Field(24 * 3600, ge=1, description="How long a request's record (and so its feedback) lives.")
    store_prompts: bool = Field(False, description="Keep the prompt text in the request's record too.")
    explore: float = Field(0.0, ge=0, lt=1, description="Share of a task's requests (once its decision is "
                                                       "final) sent to the model whose outcomes could "
                                                       "overturn it soonest (x-router-decision: explore), "
                                                       "while some model still could.")
    policy: str = Field(
        DEFAULT_POLICY, description="How outcomes revise a decision: reliability_to_bma (the default, chosen "
        "by the rule in docs/results.md) also reads them as a measure of the predictors' accuracy, which "
        "may send a departed task back to the best model on average; outcome: only as evidence of "
        "accuracy; reliability: either direction; agreement_to_bma: reliability_to_bma measured by the "
        "answers' agreement with their prompts' predictions (with store_prompts, every fed-back prompt's).")
    confidence: float = Field(0.9, ge=0.5, lt=1, description="P(another model beats the served one by "
                                                            "margin) needed to revise a decision.")
    margin: float = Field(0.01, ge=0, description="Accuracy the other model must be ahead by.")
    min_outcomes: int = Field(20, ge=1, description="Outcomes of the served model before it can be replaced.")
    max_revisions: int = Field(2, ge=0, description="Revisions per task and set of knobs (then it stays).")
    coverage_threshold: float = Field(0.5, ge=0, le=1, description="A task whose coverage is below this "
                                      "needs feedback (GET /v1/router/tasks?needs_feedback=true, the gauge).")
    max_listed_tasks: int = Field(100_000, ge=1, description="Cap on the tasks whose coverage is kept for "
                                  "that list (past it the best-covered are dropped).")

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"must be one of {', '.join(POLICIES)}, not {v!r}")
        return v


class GatewayConfig(_Strict):
    model_list: list[ModelEntry] = Field(min_length=1)
    router: RouterSettings
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: Limits = Field(default_factory=Limits)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    upstreams: UpstreamSettings = Field(default_factory=UpstreamSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> "GatewayConfig":
        aliases = self.router.alias_names
        dup = sorted({a for a in aliases if aliases.count(a) > 1})
        if dup:
            raise ValueError(f"router.aliases: {', '.join(dup)} named twice")
        clash = sorted(set(aliases) & {m.model_name for m in self.model_list})
        if clash:
            raise ValueError(f"router.aliases: {', '.join(clash)} also named in model_list")
        return self

    @property
    def warnings(self) -> list[str]:
        """What the file set that this gateway does not apply (logged at start-up)."""
        return self._warnings

    @cached_property
    def models_by_name(self) -> dict[str, ModelEntry]:
        """Each model_name's first entry (its prices stand for the model's in routing costs)."""
        out: dict[str, ModelEntry] = {}
        for m in self.model_list:
            out.setdefault(m.model_name, m)
        return out

    @cached_property
    def deployments_by_name(self) -> dict[str, list[ModelEntry]]:
        """Every entry of each model_name: its deployments, load-balanced."""
        out: dict[str, list[ModelEntry]] = {}
        for m in self.model_list:
            out.setdefault(m.model_name, []).append(m)
        return out

    def missing_models(self, router_models: list[str]) -> list[str]:
        """Models the router may pick that ``model_list`` cannot serve."""
        return [m for m in router_models if m not in self.models_by_name]

def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)

def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a YAML config; relative artifact/state paths resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        raw, warnings = adopt(raw)
        cfg = GatewayConfig.model_validate(raw)
    except ValueError as exc:  # pydantic's ValidationError is one
        detail = _format(exc) if isinstance(exc, ValidationError) else f"  {exc}"
        raise ConfigError(f"{path}: invalid config\n{detail}") from None
    cfg.warnings.extend(warnings)
    base = path.resolve().parent
    if not cfg.router.artifact.is_absolute():
        cfg.router.artifact = base / cfg.router.artifact
    if not cfg.redis.state_dir.is_absolute():
        cfg.redis.state_dir = base / cfg.redis.state_dir
    return cfg
