"""The app's Azure identity: one credential per process, with explicit network timeouts.

In Azure this resolves to the user-assigned managed identity (``AZURE_CLIENT_ID``, set by the
Bicep templates); on a developer machine to the Azure CLI / azd login. The token requests get the
same connect/read timeouts as our storage calls instead of the SDK's defaults.
"""

from __future__ import annotations

import threading
from typing import Any

from shared import lifecycle

_credential: Any = None
_lock = threading.Lock()


def get_credential() -> Any:
    global _credential
    if _credential is None:
        with _lock:
            if _credential is None:
                from azure.identity import DefaultAzureCredential

                from shared.config import get_settings

                timeout = get_settings().STORAGE_TIMEOUT_SECONDS
                _credential = DefaultAzureCredential(connection_timeout=timeout, read_timeout=timeout,
                                                     retry_total=2)
    return _credential


@lifecycle.on_reset
def _reset() -> None:
    global _credential
    _credential = None
