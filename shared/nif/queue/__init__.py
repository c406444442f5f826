"""NIF entity-change queue consumer.

Modules (nothing runs at import time; the Azure SDKs are imported lazily by the adapters):

- ``envelope``   pure: Service Bus message → :class:`Envelope` (properties as str/bytes/int),
                 :class:`ChangeType`, entity-name normalisation, poison classification.
- ``entities``   pure: the 11 known entities, projection table names, keys, tolerant models.
- ``merge``      pure: per-field last-writer-wins delta merge, tombstones, informational
                 snapshots (``apply_change``, ``fold``).
- ``journal``    journal rows (raw body in segments of one entity; the adapter splits properties).
- ``rows``       pure: a merged row state to a projection row and back.
- ``links``      pure: ``NifLinks`` / ``NifMergeMap`` rows, merge chains (``survivor_of``).
- ``processor``  journal-first processing over the table adapter: single and batch paths,
                 per-message isolation, quarantine, outcomes; rebuild from the journal.
- ``apply``      changes into projection rows: ETag-conditional writes, retried on Conflict.
- ``cache``      the write-through LRU cache of rows and ETags.
- ``derived``    links, merge map and merged marks written after the projection rows.
- ``confirm``    traceId confirmation of recorded membership requests.
- ``pools``      thread pools for concurrent storage calls; ops written per partition.
- ``handlers``   entry points the Service Bus function glue calls.
- ``servicebus`` narrow receiver interface + the azure-servicebus implementation.
- ``rebuild`` / ``deadletter`` / ``quarantine``: recovery commands (``python -m ...``).
"""
