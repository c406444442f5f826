"""IdrottOnline (RF, Sweden): intake models, XML v1, delta selection, LOK-stöd prognosis.

Pure core (no Azure SDK, no httpx, no paramiko): personnummer, models, elements, xmlwriter,
xsd, delta, lok. lxml is imported lazily inside xmlwriter/xsd functions. Adapters (store, export,
api, openapi_ops) sit at the edge. Nothing is imported here so ``import shared.idrott`` stays cheap.
"""
