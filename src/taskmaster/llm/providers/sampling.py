"""The `mcp` provider (model `mcp-sampling`): the calling MCP client's own model does the work.

When the client declares the sampling capability, the MCP layer hands the router a `Sampler` for
the call: `await sample(messages, system, max_tokens) -> (text, model)`, which sends the client a
`sampling/createMessage` request. Messages are `{"role": "user" | "assistant", "content": str}`;
the MCP layer turns them into MCP content blocks. No key is needed; the client counts no tokens
for us, so usage is zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .base import ChatProvider, Completion, GenerateRequest, LlmError, ProviderError

Sampler = Callable[[list[dict], str, int], Awaitable[tuple[str, str]]]
DEFAULT_MAX_TOKENS = 8192


class SamplingProvider(ChatProvider):
    def __init__(self, sample: Sampler):
        super().__init__("mcp", "mcp-sampling")
        self._sample = sample

    def __repr__(self) -> str:
        return "SamplingProvider(mcp/mcp-sampling)"

    async def complete(self, request: GenerateRequest, messages: list[dict]) -> Completion:
        try:
            text, model = await asyncio.wait_for(
                self._sample(messages, request.system, request.max_tokens or DEFAULT_MAX_TOKENS),
                request.timeout)
        except TimeoutError:
            raise ProviderError(f"mcp/mcp-sampling: the client did not answer within {request.timeout:g} s "
                                "(timeout)", retryable=True) from None
        except LlmError:
            raise
        except Exception as error:  # the client refused or failed: final for this provider
            raise ProviderError(f"mcp/mcp-sampling: the client could not sample: {error}",
                                retryable=False) from None
        if not isinstance(text, str):
            raise ProviderError("mcp/mcp-sampling: the client's answer holds no text", retryable=False)
        return Completion(text=text, model=model or None)
