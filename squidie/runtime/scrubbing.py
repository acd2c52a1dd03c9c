"""Scrubbing secrets from anything Squidie stores about errors and metadata."""

from __future__ import annotations

import re
from typing import Any

from squidie.workflow.portable_json import sanitise_text

SENSITIVE_KEYS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "token",
    "secret",
    "api_key",
    "api-key",
    "apikey",
    "authorization",
    "auth",
    "private_key",
    "private-key",
    "credential",
    "cookie",
    "session_key",
    "access_key",
    "signature",
)
REDACTED = "[REDACTED]"
MAX_MESSAGE = 2000
_KEY_RE = "|".join(re.escape(k) for k in SENSITIVE_KEYS)
# A credential after an auth scheme: "Bearer abc.def", "Basic dXNlcjpw".
_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest|token)\s+[^\s,;'\"]+")
# key=value / key: value / "key": "value", the value quoted or bare.
_PAIR = re.compile(
    rf"""(?ix)
    ([\w.-]*(?:{_KEY_RE})[\w.-]*)       # a key that names a secret
    (["']?\s*[=:]\s*)                   # its separator, maybe after a closing quote
    ("[^"]*"|'[^']*'|[^\s,;&}}]+)         # the value
    """
)
_URL_PASSWORD = re.compile(r"(?i)(\w+://[^:/@\s]+:)[^@\s]+@")


def is_sensitive_key(key: str) -> bool:
    """True when a mapping key names a secret."""
    lowered = key.lower()
    return any(s in lowered for s in SENSITIVE_KEYS)


def redact_text(text: str) -> str:
    """Mask auth-scheme credentials, ``key=value`` secrets (quoted or bare) and URL
    passwords in free text. NUL characters become ``\\x00`` and lone surrogates
    ``\\udXXX`` escapes, so every database stores the result."""
    # Cut first: scanning a 10 MB message for secrets would cost more than the step.
    text = sanitise_text(text[: 2 * MAX_MESSAGE])
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PAIR.sub(_mask_pair, text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _mask_pair(match: re.Match[str]) -> str:
    key, separator, value = match.groups()
    if value.startswith(REDACTED) or value.lower() in ("bearer", "basic", "digest", "token"):
        return match.group(0)  # already masked by the scheme rule
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{key}{separator}{quote}{REDACTED}{quote}"


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
