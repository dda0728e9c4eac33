"""The pytest side of the AWS call check (``aws_calls.py``), registered by ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aws_calls import RECORDER, failures, inventory_key, item_component, pairs


class Plugin:
    """Registered by ``tests/conftest.py``: the component per test, the check after each test body, and
    at the end the calls made during teardowns plus a summary of the (component, action) pairs."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def pytest_configure(self, config) -> None:
        config.addinivalue_line("markers", "aws_component(name): the component whose AWS calls the test makes")
        RECORDER.install()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        RECORDER.component = item_component(item)
        try:
            return (yield)
        finally:
            RECORDER.component = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        result = yield
        messages = self._check_new()
        if messages:
            raise AssertionError("AWS calls the role does not allow (infra/template.yaml):\n" + "\n".join(messages))
        return result

    def _check_new(self) -> list[str]:
        with RECORDER._lock:
            new, RECORDER.checked = RECORDER.calls[RECORDER.checked :], len(RECORDER.calls)
        messages = failures(new)
        self.failed += messages
        return messages

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        late = self._check_new()  # calls made in fixture teardowns (e.g. a write-behind flush at shutdown)
        if late:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            print("\nAWS calls made during teardown that the role does not allow:\n" + "\n".join(late))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        recorded = [r for r in RECORDER.calls if not r.unassigned and not r.stubbed]
        if not recorded:
            return
        dump = os.environ.get("FRAUD_AWS_CALLS_DUMP")
        if dump:  # the distinct recorded calls, for maintaining the inventory
            keys = sorted({(*inventory_key(r.call), r.outcome) for r in recorded})
            Path(dump).write_text(json.dumps(keys, indent=1) + "\n")
        terminalreporter.section("AWS calls by component (checked against infra/template.yaml roles)")
        try:
            found = sorted(pairs(recorded))
        except Exception as exc:  # a summary must not hide the run's result
            terminalreporter.write_line(f"could not summarise: {exc}")
            return
        for comp, action in found:
            terminalreporter.write_line(f"{comp:<16} {action}")
        terminalreporter.write_line(f"{len(recorded)} calls, {len(found)} (component, action) pairs, "
                                    f"{len(self.failed)} denied")  # fmt: skip
