"""litellm's provider handlers called directly for plain ``openai/`` chat models (the fast path).

This is the only module that imports litellm's internals (``litellm.litellm_core_utils``,
``litellm.llms``, ``litellm.main``'s handler, ``litellm.types``); it is written against
**litellm==1.106.12** (pinned in pyproject.toml): re-check :func:`direct_chat` and
:func:`chat_openai` against ``litellm.completion`` whenever that pin moves. Everything else in the
gateway uses litellm's public functions (``acompletion``, ``atext_completion``, ``aembedding``,
``get_optional_params``) and exception types.

:func:`configure` sets the litellm globals the gateway relies on; the forwarder calls it once.
Importing this module changes nothing (``gateway/__init__.py`` keeps litellm from fetching its
model cost map at import, whatever imports litellm first).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import litellm
from litellm.litellm_core_utils.litellm_logging import Logging as LiteLLMLogging
from litellm.llms.openai.openai import OpenAIChatCompletion
from litellm.main import base_llm_http_handler
from litellm.types.utils import LlmProviders, ModelResponse
from litellm.utils import ProviderConfigManager

LITELLM_VERSION = "1.106.12"  # the version this module's use of litellm internals was checked against
SCALARS = frozenset({str, int, float, bool})
# the configured litellm arguments the direct path knows what to do with
DIRECT_KEYS = frozenset({"api_base", "api_key", "input_cost_per_token", "output_cost_per_token"})
MEMO_SIZE = 1024

_openai_chat: OpenAIChatCompletion | None = None


def configure(drop_params: bool = True) -> None:
    """The litellm settings the gateway forwards under (idempotent).

    No telemetry; parameters a provider does not take are dropped (``drop_params``, the config's
    ``upstreams.drop_params``) rather than failing the call; no debug banners; litellm's per-call
    INFO line ("LiteLLM completion() model=...") is one line per request of noise, so its logger
    starts at WARNING.
    """
    litellm.telemetry = False
    litellm.drop_params = drop_params
    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    installed = importlib.metadata.version("litellm")
    if installed != LITELLM_VERSION:
        logging.getLogger("gateway.forward").warning(
            "litellm %s is installed; the direct openai/ path was checked against %s", installed, LITELLM_VERSION)


@dataclass(frozen=True)
class DirectChat:
    """A model whose chat calls go straight to litellm's provider handlers (:func:`chat_openai`)."""

    model: str  # without the ``openai/`` prefix, as litellm's handler takes it
    api_base: str
    api_key: str
    timeout: httpx.Timeout
    config: Any  # litellm's provider config for the model (transforms the request)


def direct_chat(kwargs: dict[str, Any]) -> DirectChat | None:
    """The direct path for one model's litellm arguments, or None where only ``acompletion`` will do.

    Only ``openai/<model>`` with a configured ``api_base`` and ``api_key`` and nothing else that
    ``litellm.completion`` would act on; models litellm bridges to the Responses API (its model map
    says mode ``responses``) or fakes streams for stay on ``acompletion``.
    """
    provider, _, model = str(kwargs.get("model", "")).partition("/")
    if provider != "openai" or not model or not kwargs.get("api_base") or not kwargs.get("api_key"):
        return None
    if set(kwargs) - DIRECT_KEYS - {"model", "max_retries", "timeout"}:
        return None
    if (litellm.model_cost.get(model) or {}).get("mode", "chat") != "chat":
        return None
    config = ProviderConfigManager.get_provider_chat_config(model=model, provider=LlmProviders.OPENAI)
    if config is None or config.should_fake_stream(model=model, stream=True, custom_llm_provider="openai"):
        return None
    return DirectChat(model, kwargs["api_base"], kwargs["api_key"], kwargs["timeout"], config)


class ParamMemo:
    """``litellm.get_optional_params`` for ``openai/`` models, memoized for scalar parameters.

    The mapping is a function of the model and the parameters (and litellm's settings, fixed by
    :func:`configure`), ~0.3-0.7 ms a call here; requests mostly repeat a few scalar settings (none,
    ``temperature``, ``max_tokens``, ...). Anything else (tools, messages-like structures) is
    mapped per call. The memo is bounded (:data:`MEMO_SIZE`).
    """

    def __init__(self) -> None:
        self._mapped: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._mapped)

    def map(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        key = None
        if all(type(v) in SCALARS for v in params.values()):
            key = (model, *sorted((k, type(v).__name__, v) for k, v in params.items()))
            if (hit := self._mapped.get(key)) is not None:
                return {k: dict(v) if isinstance(v, dict) else v for k, v in hit.items()}
        optional: dict[str, Any] = litellm.get_optional_params(model=model, custom_llm_provider="openai", **params)
        if key is not None:
            if len(self._mapped) >= MEMO_SIZE:
                self._mapped.clear()
            self._mapped[key] = {k: dict(v) if isinstance(v, dict) else v for k, v in optional.items()}
        return optional


async def chat_openai(d: DirectChat, messages: list[Any], optional: dict[str, Any], stream: bool,
                      headers: dict[str, str] | None = None) -> Any:
    """A chat call through litellm's provider handlers, without ``litellm.acompletion`` around them.

    What ``litellm.completion`` does for an ``openai/`` chat model, less what the gateway does not
    use. ``optional`` are the parameters as :class:`ParamMemo` mapped them (the same mapping and
    ``drop_params`` as ``acompletion``). A non-streaming call goes through litellm's generic HTTP
    handler (``BaseLLMHTTPHandler``, what litellm runs for most providers and for OpenAI under
    ``EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER``) with the OpenAI provider config's request and
    response transforms; a stream through litellm's OpenAI chat handler (the one ``acompletion``
    uses). Both return the same ``ModelResponse`` / ``CustomStreamWrapper`` and raise litellm's
    ``OpenAIError`` with the upstream status. Left out: the thread-pool hop ``acompletion`` takes
    per call (it runs ``completion()`` in the default executor), the OpenAI SDK's request building
    (non-streaming), litellm's callbacks, success logging and response-cost calculation (the
    gateway prices responses itself from ``model_info``). See docs/performance.md (Gateway).
    ``headers`` go with the HTTP request (the trace's ``traceparent``): as the OpenAI SDK's
    ``extra_headers`` for a stream, as the generic handler's ``headers`` otherwise.
    """
    global _openai_chat
    optional.pop("stream", None)
    stream_options = optional.pop("stream_options", None)
    log_obj = LiteLLMLogging(model=d.model, messages=messages, stream=stream, call_type="acompletion",
                             start_time=datetime.datetime.now(), litellm_call_id=str(uuid.uuid4()),
                             function_id="gateway")
    log_obj.update_environment_variables(model=d.model, user=None, optional_params=optional,
                                         litellm_params={"api_base": d.api_base, "custom_llm_provider": "openai"})
    if stream:
        if headers:
            optional["extra_headers"] = {**(optional.get("extra_headers") or {}), **headers}
        if _openai_chat is None:
            _openai_chat = OpenAIChatCompletion()
        return await _openai_chat.async_streaming(
            messages=messages, optional_params=optional, litellm_params={}, provider_config=d.config,
            model=d.model, logging_obj=log_obj, timeout=d.timeout, api_key=d.api_key, api_base=d.api_base,
            max_retries=0, stream_options=stream_options)
    return await base_llm_http_handler.completion(
        model=d.model, messages=messages, api_base=d.api_base, custom_llm_provider="openai",
        model_response=ModelResponse(), encoding=None, logging_obj=log_obj, optional_params=optional,
        timeout=d.timeout, litellm_params={}, acompletion=True, stream=False, api_key=d.api_key, headers=headers or {},
        provider_config=d.config)
