"""Exceptions raised by the NIF client. Catch at the level you can act on::

    NifError                      anything that went wrong talking to NIF
    ├── NifUnavailable            transport error, HTTP 5xx/502, or NIF rejected our credentials
    │   └── NifTimeout            connect/read/write/pool timeout
    ├── NifRejected               HTTP 4xx with NIF's business code (``nif_code``) when it gave one
    └── NifContractError          a 2xx response that failed parsing or model validation

The HTTP layer maps them: NifRejected → 4xx problem carrying ``nifCode``, NifTimeout → 504,
NifUnavailable / NifContractError → 502. Messages never contain tokens or keys.
"""

from __future__ import annotations


class NifError(Exception):
    """Base class; ``status`` is NIF's HTTP status when there was a response."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NifUnavailable(NifError):
    """NIF could not be reached or failed (5xx), or refused our credentials (401 after refresh)."""


class NifTimeout(NifUnavailable):
    """NIF did not answer in time. For a POST the outcome is unknown: it may have been applied."""


class NifRejected(NifError):
    """NIF refused the request with a 4xx; ``nif_code`` is NIF's code (e.g. 1007) if it sent one."""

    def __init__(self, message: str, *, status: int, nif_code: int | None = None) -> None:
        super().__init__(message, status=status)
        self.nif_code = nif_code


class NifContractError(NifError):
    """NIF answered 2xx, but the body is not what the contract says."""
