"""Actor-scoped redaction of views before they leave a trusted boundary.

``from squidie.visibility import redact`` — see
:mod:`squidie.read_model.visibility` for scopes and policies.
"""

from squidie.read_model.visibility import Scope, redact, resolve_scope

__all__ = ["Scope", "redact", "resolve_scope"]
