"""``python -m bench [name ...]``: run the benchmarks (all by default), each in a fresh process.

Each benchmark prints its own ratios against a bare baseline measured in the same run. A fresh
interpreter per benchmark keeps one benchmark's imports, caches and peak memory out of the next.
Names: cold_start, nif, queue, export, bigclub, intake, payments, fanout (and night, run alone).
"""

from __future__ import annotations

import subprocess
import sys
import time

ALL = ("cold_start", "nif", "queue", "export", "bigclub", "intake", "payments", "fanout")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    failed = []
    for name in names:
        print(f"\n=== bench_{name} ===", flush=True)
        started = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", f"bench.bench_{name}"])
        if rc:
            failed.append(name)
        print(f"--- bench_{name}: {time.perf_counter() - started:.1f} s (exit {rc})", flush=True)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
