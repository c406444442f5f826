"""Run one queue-triggered function of the test app under :class:`devtools.queue_poller.QueuePoller`.

``python -m tests.queue_trigger_app.harness FUNCTION [--overrides JSON] [--timeout S] [--one-pass]``
starts the runtime over this folder, polls until drained and prints the poller's stats as JSON
(``{"error": ...}`` and exit status 1 on a timeout). Settings come from the environment
(``AzureWebJobsStorage``, ``QT_QUEUE``, ``QT_RECORD_DIR``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from devtools.queue_poller import QueuePoller
from devtools.runtime.driver import RuntimeDriver

APP_DIR = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("function")
    ap.add_argument("--overrides", default="{}", help="QueueOptions fields as JSON")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--one-pass", action="store_true", help="drain(until_empty=False)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    driver = RuntimeDriver(APP_DIR).start()
    try:
        with QueuePoller(driver, args.function, **json.loads(args.overrides)) as poller:
            try:
                stats = poller.drain(until_empty=not args.one_pass, timeout=args.timeout)
            except TimeoutError as exc:
                print(json.dumps({"error": str(exc), **poller.stats.as_dict()}))
                return 1
            out = {**stats.as_dict(), "queue": poller.queue_name, "options": poller.options.__dict__}
        print(json.dumps(out, default=str))
        return 0
    finally:
        driver.stop()


if __name__ == "__main__":
    sys.exit(main())
