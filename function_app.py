"""Entry point the Functions host indexes: create the app, register the blueprints. Nothing else.

Keep this import cheap and side-effect free: blueprint modules import only azure.functions and
name their handlers as lazy "module:attr" strings (see docs/architecture.md).
"""

import azure.functions as func

from functions import health, idrott, nif_api, nif_mirror, nif_queue

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for _blueprint in (health.bp, nif_api.bp, nif_queue.bp, nif_mirror.bp, idrott.bp):
    app.register_functions(_blueprint)
