"""Callers and what they may do: keys, OIDC bearer tokens, per-club policies (docs/security.md).

- :mod:`shared.auth.policy`: the caller model and :data:`POLICIES`, one policy per HTTP function;
- :mod:`shared.auth.tokens`: token validation with PyJWT and the issuer's JWKS;
- :mod:`shared.auth.guard`: authentication, the policy check, the caller for the invocation.
"""

from shared.auth.guard import attribution, current_caller, guard
from shared.auth.policy import POLICIES, Caller, Policy

__all__ = ["POLICIES", "Caller", "Policy", "attribution", "current_caller", "guard"]
