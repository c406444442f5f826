"""NIF entity-change queue: Service Bus trigger glue (logic in shared.nif.queue).

Batch cardinality: one invocation receives up to ``maxMessageBatchSize`` (host.json) messages,
journaled in one transaction per partition and applied with grouped reads and transactions
(docs/queue.md explains the choice). A raised exception abandons the whole batch, which
is safe because processing is idempotent.

``data_type=BINARY``: the host then sends the bodies as a bytes collection, which keeps an empty
body in its place. With the default (string) the host drops empty strings from the collection,
so bodies and metadata of a batch no longer line up (docs/queue.md, docs/runtime.md).
"""

import typing

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("nif_queue")
@bp.service_bus_queue_trigger(
    arg_name="msgs",
    queue_name="%NIF_QUEUE_NAME%",
    connection="NifServiceBus",
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,
)
# typing.List, not list[...]: azure-functions-runtime 1.3.0 refuses a PEP 585 annotation on a
# binding ("invalid non-type annotation") and the function would not load.
def nif_queue(msgs: typing.List[func.ServiceBusMessage]) -> None:  # noqa: UP006
    from shared.nif.queue.handlers import handle_batch

    handle_batch(msgs)
