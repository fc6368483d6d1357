"""Request bodies of the OpenAI-compatible routes and the router's own API.

Only the fields the gateway reads are declared (so bad ones get a clear 400); every other
OpenAI parameter is kept (``extra="allow"``) and forwarded upstream untouched.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from ..body_check import check_body


class CheckedBody(BaseModel):
    """A request body: :func:`gateway.body_check.check_body` runs on the raw JSON before the fields."""

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        check_body(data)
        return data


class OpenAIParams(BaseModel):
    """OpenAI request parameters forwarded upstream, typed so that a wrong type is the client's 400 (with
    the field as ``param``) and not an upstream error; strict: ``"stream": "yes"`` is not true."""

    stream: StrictBool = False
    temperature: StrictFloat | None = None
    top_p: StrictFloat | None = None
    presence_penalty: StrictFloat | None = None
    frequency_penalty: StrictFloat | None = None
    n: StrictInt | None = Field(None, ge=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    logit_bias: dict[str, StrictFloat] | None = None
    stream_options: dict[str, Any] | None = None
    user: StrictStr | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")
        return ""


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: StrictStr | None = Field(None, description="The task this request belongs to (else the X-Task-ID header).")


class ChatCompletionRequest(CheckedBody, OpenAIParams):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "router", "messages": [{"role": "user", "content": "Which planet is largest?"}],
         "metadata": {"task_id": "astronomy-quiz"}}]})

    model: str = Field(min_length=1, description="A configured model (passes through) or an alias such as "
                                                 "'router' (routes).")
    messages: list[Message] = Field(min_length=1)
    metadata: Metadata | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: StrictStr | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)

    def routing_text(self, field: str) -> str:
        """The text router_core embeds: the last user turn, all user turns, or every turn."""
        if field == "last_user":
            for m in reversed(self.messages):
                if m.role == "user":
                    return m.text()
            return self.messages[-1].text()
        turns = self.messages if field == "all" else [m for m in self.messages if m.role == "user"]
        return "\n".join(m.text() for m in turns)

    def upstream_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"metadata"})


class CompletionRequest(CheckedBody, OpenAIParams):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: StrictStr | Annotated[list[StrictStr], Field(min_length=1)] = Field(
        description="The prompt, or a non-empty list of prompts (token arrays are not routed).")
    metadata: Metadata | None = None
    logprobs: StrictInt | None = Field(None, ge=0)
    echo: StrictBool | None = None
    suffix: StrictStr | None = None
    best_of: StrictInt | None = Field(None, ge=1)

    def routing_text(self) -> str:
        """The text router_core embeds: the whole prompt (a text completion has no turns to pick
        from, so ``router.prompt_field`` does not apply)."""
        return self.prompt if isinstance(self.prompt, str) else "\n".join(self.prompt)

    def upstream_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"metadata"})


class EmbeddingRequest(CheckedBody):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="A configured model name (embeddings are not routed).")
    input: str | list[str] | list[int] | list[list[int]]


class Sample(BaseModel):
    prompt: str = Field(min_length=1)
    labels: dict[str, float] | None = Field(
        None, description="Per-model correctness in [0, 1] for this prompt (the paper's few labels); omit for none.")


class SamplesRequest(CheckedBody):
    samples: list[Sample] = Field(min_length=1, max_length=1000)


class RouteRequest(CheckedBody):
    """A dry run: the same body as a chat completion (or just a prompt), answered with the pick."""

    model_config = ConfigDict(extra="allow")

    task_id: StrictStr | None = Field(None, description="Else metadata.task_id, else the X-Task-ID header.")
    metadata: Metadata | None = None
    prompt: str | None = None
    messages: list[Message] | None = None


Score = StrictBool | StrictInt | StrictFloat


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: StrictStr = Field(min_length=1, max_length=300, description="An x-router-request-id.")
    correct: Score = Field(description="The answer's outcome: 1 (or true) right, 0 (or false) wrong, or a "
                                       "score in [0, 1].")


class FeedbackRequest(CheckedBody):
    """One outcome (``request_id`` and ``correct``) or a batch (``feedback``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "0123456789abcdef0123456789abcdef.my-task", "correct": 1},
        {"feedback": [{"request_id": "0123456789abcdef0123456789abcdef.my-task", "correct": 0.5}]}]})

    request_id: StrictStr | None = Field(None, min_length=1, max_length=300)
    correct: Score | None = None
    feedback: list[FeedbackItem] | None = Field(None, min_length=1, max_length=1000)
