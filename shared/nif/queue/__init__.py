"""NIF entity-change queue consumer.

Modules (nothing runs at import time; the Azure SDKs are imported lazily by the adapters):

- ``envelope``   pure: Service Bus message → :class:`Envelope` (properties as str/bytes/int),
                 :class:`ChangeType`, entity-name normalisation, poison classification.
- ``entities``   pure: the 11 known entities, projection table names, keys, tolerant models.
- ``merge``      pure: per-field last-writer-wins delta merge, tombstones, informational
                 snapshots, person-merge helpers.
- ``journal``    journal rows (raw body chunked below the 64 KiB property limit).
- ``processor``  journal-first processing over the table adapter: single and batch paths,
                 ETag-conditional writes with retry, links, merge map, traceId confirmation,
                 quarantine; rebuild from the journal.
- ``handlers``   entry points the Service Bus function glue calls.
- ``servicebus`` narrow receiver interface + the azure-servicebus implementation.
- ``rebuild`` / ``deadletter`` / ``quarantine``: recovery commands (``python -m ...``).
"""
