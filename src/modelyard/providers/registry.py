"""OpenAI-compatible hosts as rows of data.

Adding a host that speaks the OpenAI chat wire format means adding one row
here, nothing else. What differs between hosts (auth header, whether the
stream can carry usage, which name the output limit goes by) is a field of
the row. Providers with a wire format of their own are in
``NATIVE_PROVIDERS`` and have modules beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    base_url: str | None  # None: the operator must give base_url
    key_env: str | None  # default credential variable; None: no key needed
    auth_header: str = "Authorization"  # "Authorization" gets "Bearer <key>"
    stream_usage: bool = True  # accepts stream_options.include_usage
    max_tokens_field: str = "max_tokens"  # where the output limit goes
    azure: bool = False  # deployment-in-path URLs with api-version


HOSTS: dict[str, Host] = {
    h.name: h
    for h in (
        Host(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            max_tokens_field="max_completion_tokens",
        ),
        Host(
            "azure",
            None,
            "AZURE_OPENAI_API_KEY",
            auth_header="api-key",
            max_tokens_field="max_completion_tokens",
            azure=True,
        ),
        Host("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
        Host("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        Host("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", stream_usage=False),
        Host("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        Host("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        Host("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        Host("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        Host("vllm", "http://127.0.0.1:8000/v1", None),
        Host("ollama", "http://127.0.0.1:11434/v1", None),
        Host("llamacpp-server", "http://127.0.0.1:8080/v1", None),
        Host("openai-compatible", None, None),
    )
}

# Providers that speak a wire format of their own, or run in-process.
NATIVE_PROVIDERS = frozenset({"anthropic", "gemini", "local"})
