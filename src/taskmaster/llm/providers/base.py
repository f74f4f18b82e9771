"""What every provider speaks: the request, the result, token usage, the errors, and the repair loop.

A provider turns a `GenerateRequest` into a `GenerateResult` whose `data` is already validated
against the request's result schema (`schemas.py`). Providers that talk to a model implement
`ChatProvider.complete` (one round trip); `ChatProvider.generate` adds the one repair retry:
an answer that is not valid JSON or breaks the schema is sent back with the error, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from ...tasks.errors import TaskError
from .. import schemas


class LlmError(TaskError):
    """An AI call that failed; the tool answers it as a clear tool error and changes nothing."""

    def __init__(self, message: str, code: str = "AI_SERVICE_ERROR"):
        super().__init__(message, code)


class NotConfigured(LlmError):
    """This provider cannot run on this node (no key, no base URL, unknown provider): skip the role."""

    def __init__(self, message: str):
        super().__init__(message, "AI_NOT_CONFIGURED")


class ProviderError(LlmError):
    """The provider answered with an error or not at all. `retryable`: 429, 5xx, timeouts, network."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message, "AI_PROVIDER_ERROR")
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class InvalidAnswer(LlmError):
    """The model's answer was still unusable after the repair retry (or was cut off)."""

    def __init__(self, message: str):
        super().__init__(message, "AI_INVALID_RESPONSE")


@dataclass
class Usage:
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def plus(self, input_tokens: int, output_tokens: int) -> Usage:
        return replace(self, input_tokens=self.input_tokens + input_tokens,
                       output_tokens=self.output_tokens + output_tokens)


@dataclass
class GenerateRequest:
    schema: str
    """The result kind: a key of `schemas.SCHEMAS` (parse_prd, expand_task, research, ...)."""
    system: str
    messages: list[dict]
    """Chat turns, `{"role": "user" | "assistant", "content": str}`; the system prompt is separate."""
    context: dict = field(default_factory=dict)
    """The structured inputs the prompt was rendered from; the offline planner works from these."""
    command: str = ""
    """The tool that asked (telemetry's commandName)."""
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float | None = None
    """Seconds for the whole round trip; None: the router's default."""
    stream: bool | None = None
    """Ask for a streamed answer (SSE); None: the role's setting."""
    on_delta: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    """Called with the number of characters received so far while streaming (progress)."""

    def to_dict(self) -> dict:
        """Plain data (for forwarding to another node); the progress callback stays behind."""
        out = asdict(self)
        del out["on_delta"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> GenerateRequest:
        return cls(**{k: v for k, v in data.items() if k in _REQUEST_FIELDS})


_REQUEST_FIELDS = frozenset(GenerateRequest.__dataclass_fields__) - {"on_delta"}


@dataclass
class GenerateResult:
    data: dict
    """The validated answer: the schema's object, or `{"text": ...}` for text kinds."""
    text: str
    """The model's raw final answer."""
    usage: Usage
    provider: str
    model: str
    role: str = ""
    """The role whose configuration answered (set by the router)."""
    note: str | None = None
    """Said to the user next to the result (the offline planner labels its heuristics here)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerateResult:
        return cls(**{**data, "usage": Usage(**data["usage"])})


@dataclass
class Completion:
    """One round trip's answer."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    truncated: bool = False
    """The model stopped at the token limit: the answer is incomplete."""
    model: str | None = None
    """The model that answered, when the other side names it (MCP sampling does)."""


class Provider(ABC):
    name: str
    model: str

    @abstractmethod
    async def generate(self, request: GenerateRequest) -> GenerateResult:
        """The validated result, or LlmError (ProviderError when a retry may help)."""


class ChatProvider(Provider):
    """A provider backed by a chat model: one `complete` per round trip, plus one repair retry."""

    def __init__(self, name: str, model: str):
        self.name = name
        self.model = model

    @abstractmethod
    async def complete(self, request: GenerateRequest, messages: list[dict]) -> Completion:
        """Send `request.system` and `messages`; the model's text and token counts."""

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        first = await self.complete(request, request.messages)
        usage = Usage(self.name, first.model or self.model, first.input_tokens, first.output_tokens)
        try:
            return self._result(request, first, usage)
        except schemas.SchemaViolation as problem:
            if first.truncated:
                raise self._cut_off(request) from None
            # APIs refuse empty turns, so an empty answer is shown as such.
            repair = [*request.messages, {"role": "assistant", "content": first.text or "(empty answer)"},
                      {"role": "user", "content": schemas.repair_instruction(request.schema, str(problem))}]
        second = await self.complete(request, repair)
        usage = usage.plus(second.input_tokens, second.output_tokens)
        try:
            return self._result(request, second, usage)
        except schemas.SchemaViolation as problem:
            if second.truncated:
                raise self._cut_off(request) from None
            raise InvalidAnswer(f"{self.name}/{self.model} returned an unusable answer for {request.schema} "
                                f"twice (the second after being told the error): {problem}") from None

    def _result(self, request: GenerateRequest, completion: Completion, usage: Usage) -> GenerateResult:
        data = schemas.parse_answer(request.schema, completion.text)
        return GenerateResult(data=data, text=completion.text, usage=usage, provider=self.name, model=usage.model)

    def _cut_off(self, request: GenerateRequest) -> InvalidAnswer:
        return InvalidAnswer(f"{self.name}/{self.model} stopped at its token limit ({request.max_tokens}) "
                             f"before finishing the {request.schema} answer; raise maxTokens for this role")
