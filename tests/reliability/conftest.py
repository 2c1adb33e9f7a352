"""Reliability suite: faults a long run must survive and bad inputs that must be answered in one line.

Tests marked ``fault`` or ``bad_input`` are counted; ``make reliability`` prints the table:
faults tried / survived with nothing lost, bad inputs tried / answered with one line and exit 2.
"""

import pytest

from .helpers import tiny_raw, write_config, write_data

_COUNTS = {"fault": [0, 0], "bad_input": [0, 0]}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call":
        return
    for kind in _COUNTS:
        if item.get_closest_marker(kind):
            _COUNTS[kind][0] += 1
            _COUNTS[kind][1] += rep.passed


def pytest_terminal_summary(terminalreporter):
    tried_f, ok_f = _COUNTS["fault"]
    tried_b, ok_b = _COUNTS["bad_input"]
    if tried_f or tried_b:
        tr = terminalreporter
        tr.write_line("")
        tr.write_line("| reliability | tried | passed |")
        tr.write_line("| --- | ---: | ---: |")
        tr.write_line(f"| faults survived with nothing lost | {tried_f} | {ok_f} |")
        tr.write_line(f"| bad inputs answered with one line and exit 2 | {tried_b} | {ok_b} |")


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "data")


@pytest.fixture
def config(tmp_path, data):
    return write_config(tmp_path / "c.yaml", tiny_raw(data))
