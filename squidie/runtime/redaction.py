"""Scrubbing secrets from anything Squidie stores about errors and metadata."""

from __future__ import annotations

import re
from typing import Any

SENSITIVE_KEYS = (
    "password", "passwd", "pwd", "token", "secret", "api_key", "apikey", "authorization",
    "private_key", "credential", "cookie", "session_key", "access_key",
)
REDACTED = "[REDACTED]"
MAX_MESSAGE = 2000
_KEY_RE = "|".join(SENSITIVE_KEYS)
_PAIR = re.compile(
    rf"(?i)([\w.-]*(?:{_KEY_RE})[\w.-]*)(\s*[=:]\s*|\"\s*:\s*\"?|'\s*:\s*'?)([^\s,;&'\"}}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(?i)(\w+://[^:/@\s]+:)[^@/\s]+@")


def is_sensitive_key(key: str) -> bool:
    """True when a mapping key names a secret."""
    lowered = key.lower()
    return any(s in lowered for s in SENSITIVE_KEYS)


def redact_text(text: str) -> str:
    """Mask ``key=value`` secrets, bearer tokens and URL passwords in free text."""
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def redact_value(value: Any) -> Any:
    """Deep-copy ``value`` with secret-named keys masked and strings scrubbed."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_sensitive_key(k) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
