"""The LLM layer: providers that speak real model APIs, the router that picks one per role, the
offline planner that answers when no model is available, and usage accounting.

    router = LlmRouter(load_llm_config(data_dir, project_root))
    result = await router.generate("main", prompts.parse_prd(prd, num_tasks=10, next_id=1))
    result.data["tasks"], result.note, router.telemetry(result, "parse-prd")
"""

from .config import LlmConfig, ModelEntry, RetryPolicy, load_llm_config
from .providers.base import GenerateRequest, GenerateResult, InvalidAnswer, LlmError, ProviderError, Usage
from .router import LlmRouter

__all__ = ["GenerateRequest", "GenerateResult", "InvalidAnswer", "LlmConfig", "LlmError", "LlmRouter",
           "ModelEntry", "ProviderError", "RetryPolicy", "Usage", "load_llm_config"]
