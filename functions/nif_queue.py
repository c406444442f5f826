"""NIF entity-change queue: Service Bus trigger glue (logic in shared.nif.queue).

Batch cardinality: one invocation receives up to ``maxMessageBatchSize`` (host.json) messages,
journaled in one transaction per partition and applied with grouped reads and transactions
(docs/queue.md explains the choice). A raised exception abandons the whole batch, which
is safe because processing is idempotent.
"""

import typing

import azure.functions as func

from functions._glue import call

bp = func.Blueprint()


@bp.function_name("nif_queue")
@bp.service_bus_queue_trigger(arg_name="msgs", queue_name="%NIF_QUEUE_NAME%", connection="NifServiceBus",
                              cardinality=func.Cardinality.MANY)
def nif_queue(msgs: typing.List[func.ServiceBusMessage]) -> None:
    call("shared.nif.queue.handlers:handle_batch", msgs)
