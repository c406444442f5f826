"""A test-only function app with queue-triggered functions (tests/test_queue_poller.py).

The runtime keeps one app per process and the suite's driver indexes the real ``function_app``,
so this app runs in a child process: ``python -m tests.queue_trigger_app.harness``.
"""
