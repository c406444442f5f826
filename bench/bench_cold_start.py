"""Cold start: ``python -m bench.bench_cold_start``.

Time ``import function_app`` (app created, blueprints registered) against ``import
azure.functions`` in fresh interpreters with an empty app environment; median of several runs
each; ratio target <= 1.5 (heavy imports must be deferred to first use).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "9"))
ROOT = Path(__file__).resolve().parent.parent
_SNIPPET = "import time; t=time.perf_counter(); import {mod}; print(time.perf_counter()-t)"


def _env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(ROOT),
                                                                 "PYTHONDONTWRITEBYTECODE": "0"}


def measure(module: str, runs: int = RUNS) -> float:
    """Median import time (s) of ``module`` in ``runs`` fresh interpreters (after one warm-up)."""
    samples = []
    for i in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", _SNIPPET.format(mod=module)], cwd=ROOT, env=_env(),
                             capture_output=True, text=True, check=True)
        if i:  # the first run fills the bytecode cache
            samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def main() -> int:
    base = measure("azure.functions")
    app = measure("function_app")
    ratio = app / base
    print(f"cold start: import function_app {app * 1000:.1f} ms, import azure.functions {base * 1000:.1f} ms, "
          f"ratio {ratio:.2f} (target <= 1.5)")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
