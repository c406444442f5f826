"""``python -m bench [name ...]``: run the benchmarks (all by default) one after another.

Each benchmark prints its own ratios; this runner adds nothing but the order and a summary of
which ones ran. Names: cold_start, nif, queue, export.
"""

from __future__ import annotations

import importlib
import sys
import time

ALL = ("cold_start", "nif", "queue", "export")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    failed = []
    for name in names:
        print(f"\n=== bench_{name} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            rc = module.main([]) if hasattr(module, "main") else 0
        except SystemExit as exc:  # a benchmark that calls sys.exit
            rc = exc.code or 0
        if rc:
            failed.append(name)
        print(f"--- bench_{name}: {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print("missed targets or failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
