"""LiteLLM Proxy config files read as this gateway's: the settings sections, and the keys litellm takes.

A LiteLLM Proxy ``config.yaml`` is ``model_list`` (the gateway's own layout) plus
``litellm_settings``, ``general_settings``, ``router_settings`` and ``environment_variables``.
:func:`adopt` folds what means something here into the gateway's own sections (where a key is
given in both places, the gateway's own section wins) and returns one warning for every key it
does not apply, so nothing in such a file is dropped silently.

``litellm_params`` keys are checked against litellm's own declarations (:func:`accepted_params`):
a typo such as ``api_bse`` stops start-up naming the key, instead of reaching litellm as a
provider argument while requests quietly fall back to another model.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any

#: the sections of a LiteLLM Proxy config that are not the gateway's own
LITELLM_SECTIONS = ("litellm_settings", "general_settings", "router_settings", "environment_variables")

# LiteLLM key -> (gateway section, gateway key): the settings that mean the same thing here
LITELLM_SETTINGS: dict[str, tuple[str, str]] = {
    "drop_params": ("upstreams", "drop_params"),
    "num_retries": ("limits", "retries"),
    "request_timeout": ("limits", "read_timeout_s"),
}
ROUTER_SETTINGS: dict[str, tuple[str, str]] = {
    "routing_strategy": ("upstreams", "balancing"),
    "num_retries": ("limits", "retries"),
    "timeout": ("limits", "read_timeout_s"),
    "cooldown_time": ("upstreams", "cooldown_s"),
    "allowed_fails": ("upstreams", "allowed_fails"),
}
#: LiteLLM's routing strategies this gateway implements for several deployments of one model_name
BALANCING = ("simple-shuffle", "least-busy")

# litellm_params keys that only LiteLLM's Router acts on (rate limits, ordering): accepted in a
# LiteLLM config, not passed to the upstream call, and warned about
ROUTER_ONLY_PARAMS = frozenset({"rpm", "tpm", "itpm", "otpm", "order", "weight", "max_parallel_requests"})


@functools.cache
def accepted_params() -> frozenset[str]:
    """Every key litellm accepts in a deployment's ``litellm_params``, from litellm's own declarations.

    The union of: the deployment schema LiteLLM's Router validates (``LiteLLM_Params`` and the typed
    dict ``LiteLLMParamsTypedDict``), litellm's list of its own call arguments
    (``litellm.types.utils.all_litellm_params``), ``litellm.completion``'s named parameters and the
    OpenAI chat parameters litellm knows (``OPENAI_CHAT_COMPLETION_PARAMS``), which a deployment may
    fix (``temperature``, ``max_tokens``, ...).
    """
    import litellm
    from litellm.types.router import LiteLLM_Params, LiteLLMParamsTypedDict
    from litellm.types.utils import all_litellm_params

    named = [name for name, p in inspect.signature(litellm.completion).parameters.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    keys = {*LiteLLM_Params.model_fields, *LiteLLMParamsTypedDict.__annotations__, *all_litellm_params,
            *named, *getattr(litellm, "OPENAI_CHAT_COMPLETION_PARAMS", ())}
    return frozenset(keys - {"messages", "stream"})  # per request, never per deployment


def unknown_params(keys: list[str]) -> list[str]:
    """The keys litellm would not recognise, each with the nearest accepted key when one is close."""
    accepted = accepted_params()
    out = []
    for key in keys:
        if key in accepted:
            continue
        near = difflib.get_close_matches(key, sorted(accepted), n=1, cutoff=0.75)
        out.append(f"{key} (did you mean {near[0]}?)" if near else key)
    return out


def adopt(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A LiteLLM Proxy config's settings moved into the gateway's sections, and the warnings.

    Returns a new mapping without the LiteLLM sections. Applied: ``litellm_settings`` ``drop_params``,
    ``num_retries``, ``request_timeout``; ``general_settings.master_key`` (one more accepted API key);
    ``router_settings`` ``routing_strategy`` (simple-shuffle or least-busy), ``num_retries``,
    ``timeout``, ``cooldown_time``, ``allowed_fails``. Everything else is named in a warning.
    """
    out = {k: v for k, v in raw.items() if k not in LITELLM_SECTIONS}
    warnings: list[str] = []
    own = {section: dict(out.get(section) or {}) for section in ("limits", "upstreams", "auth")}
    origin = {(section, key): f"{section}.{key}" for section, values in own.items() for key in values}

    def put(where: str, section: str, key: str, value: Any) -> None:
        if (section, key) in origin:
            if own[section][key] != value:
                warnings.append(f"{where}: {origin[section, key]} also sets {section}.{key} and is used")
            return
        own[section][key] = value
        origin[section, key] = where

    # router_settings first: LiteLLM's Router applies its own num_retries/timeout over the module's
    for name, entries in (("router_settings", ROUTER_SETTINGS), ("litellm_settings", LITELLM_SETTINGS)):
        settings = raw.get(name) or {}
        if not isinstance(settings, dict):
            raise ValueError(f"{name}: expected a mapping")
        for key, value in settings.items():
            where = f"{name}.{key}"
            if key not in entries:
                warnings.append(f"{where}: not applied by this gateway (ignored)")
                continue
            section, target = entries[key]
            if key == "routing_strategy" and value not in BALANCING:
                warnings.append(f"{where}: {value!r} is not implemented here; simple-shuffle is used "
                                f"(one of {', '.join(BALANCING)} can be)")
                value = "simple-shuffle"
            put(where, section, target, value)

    general = raw.get("general_settings") or {}
    if not isinstance(general, dict):
        raise ValueError("general_settings: expected a mapping")
    for key, value in general.items():
        if key == "master_key":
            keys = list(own["auth"].get("api_keys") or [])
            if value not in keys:
                keys.append(value)
            own["auth"]["api_keys"] = keys
        else:
            warnings.append(f"general_settings.{key}: not applied by this gateway (ignored)")
    if raw.get("environment_variables"):
        warnings.append("environment_variables: not applied; set these variables in the gateway's "
                        "environment (os.environ/NAME reads them)")

    for entry in out.get("model_list") or []:
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        if isinstance(params, dict):
            ignored = sorted(ROUTER_ONLY_PARAMS & set(params))
            if ignored:
                warnings.append(f"model_list ({entry.get('model_name')}): litellm_params {', '.join(ignored)}: "
                                "rate limits and deployment order are LiteLLM Router features, not applied here")
    for section, values in own.items():
        if values:
            out[section] = values
    return out, warnings
