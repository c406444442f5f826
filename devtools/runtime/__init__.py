"""Drive Microsoft's Python Functions runtime (``azure-functions-runtime``) as the host's proxy worker does.

- ``worker_protocol.proto``: our own minimal subset of the language-worker protocol;
- ``protos``: compiles it at run time (grpcio-tools) and loads the message classes;
- ``driver``: ``RuntimeDriver`` starts the runtime, indexes the app and sends invocations;
- ``invocations``: builds each invocation as the Functions host builds it (HTTP, Service Bus batch,
  timer), including the host's rules for trigger metadata.

docs/runtime.md lists which host rules are modelled, from which source files, and what stays unverified.
"""
