"""Compile ``worker_protocol.proto`` with grpcio-tools and load the generated module (once per process).

The generated code goes to a temporary directory and is never committed. Compiling takes tens of
milliseconds; the module is cached, because protobuf registers each message type once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
from importlib import resources
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("worker_protocol.proto")
MODULE = "worker_protocol_pb2"


@functools.cache
def load() -> ModuleType:
    """The message classes (``StreamingMessage``, ``TypedData``, ``RpcHttp``, …) as one module."""
    from grpc_tools import protoc  # dev-only dependency; imported here so nothing else pays for it

    with tempfile.TemporaryDirectory(prefix="idrettsbro-protos-") as tmp:  # gone once the module is loaded
        out = Path(tmp)
        include = resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto ship with grpcio-tools
        args = ["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={out}", str(PROTO)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed to compile {PROTO.name}")
        spec = importlib.util.spec_from_file_location(MODULE, out / f"{MODULE}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        spec.loader.exec_module(module)
    return module
