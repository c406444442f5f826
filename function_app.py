"""Entry point the runtime indexes: install log redaction, create the app, register the blueprints.

Keep this import cheap and side-effect free: blueprint modules import only azure.functions and
import each handler inside the function body, on first call (see docs/architecture.md).
"""

import azure.functions as func

from functions import health, idrott, nif_api, nif_mirror, nif_payments, nif_queue
from functions._glue import apply_auth_mode
from shared.logs import install_redaction

install_redaction()  # before any handler can log: tokens, keys and personnummer never reach a log

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for _blueprint in (health.bp, nif_api.bp, nif_queue.bp, nif_mirror.bp, idrott.bp, nif_payments.bp):
    app.register_functions(_blueprint)
apply_auth_mode(app)  # AUTH_MODE=tokens: HTTP routes anonymous at the host, the app checks callers
