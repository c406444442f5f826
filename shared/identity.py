"""The app's Azure identity: one credential per process, with explicit network timeouts.

In Azure this resolves to the user-assigned managed identity (``AZURE_CLIENT_ID``, set by the
Bicep templates); on a developer machine to the Azure CLI / azd login. The token requests get the
same connect/read timeouts as our storage calls instead of the SDK's defaults.
"""

from __future__ import annotations

from typing import Any

from shared import lifecycle


def _credential() -> Any:
    """The process-wide DefaultAzureCredential, its token requests bounded by STORAGE_TIMEOUT_SECONDS."""
    from azure.identity import DefaultAzureCredential

    from shared.config import get_settings

    timeout = get_settings().STORAGE_TIMEOUT_SECONDS
    return DefaultAzureCredential(connection_timeout=timeout, read_timeout=timeout, retry_total=2)


get_credential = lifecycle.process_wide(_credential)
