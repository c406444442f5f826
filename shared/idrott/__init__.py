"""IdrottOnline (RF, Sweden): intake models, XML v1, delta selection, LOK-stöd prognosis, export runs.

Pure core (no Azure SDK, no httpx, no paramiko; lxml only inside functions): clock, personnummer,
models, elements, xmlrecords (a record's XML), xmlwriter (splitting a run into files), xsd, delta,
lok. Adapters at the edge: rows + store + pnrindex + selection (the club's records in Table
Storage), lock, state, ledger, error_codes, files, export (one run), preview, the
nightly fan-out (workitem, fanout, worker, nights, slots, poison, fanout_api), api, openapi_ops. Nothing is imported here so ``import shared.idrott`` stays cheap.
"""
