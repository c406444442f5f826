"""NIF payments: report every settled payment exactly once, and read them back (docs/payments.md).

- :mod:`.models` (pure): the request, NIF's answers, our answers.
- :mod:`.rules` (pure): local validation with NIF's codes, the query rules of GET payment details
  (1022–1026), the content hash, backoff, and the normalisation of NIF's two response shapes.
- :mod:`.outbox`: the durable outbox in Table Storage (``NifPayments`` + its ``NifPaymentsDue``
  index) with ETag-conditional claims and transitions.
- :mod:`.nif`: the two NIF calls, on the process-wide NIF client.
- :mod:`.service`: reporting a payment and the retry drain (the timer).
- :mod:`.api`: HTTP handlers (bound in ``functions/nif_payments.py``); :mod:`.openapi_ops`.
"""
