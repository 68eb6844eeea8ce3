"""Skips that cannot pass silently: a test is skipped only when a `PORTICO_SKIP_*` variable says so.

A test that needs something absent (PostgreSQL, the MCP peers) calls `skip_or_fail`: with the
variable set to 1 the test is skipped, its reason starting with `VARIABLE=1`; otherwise it fails
with a message saying how to get what is missing. The hooks in `conftest.py` turn every other
skip, and every xfail, into a failure (`unexpected`), so that `scripts/test` fails when a test
did not run without being told to skip it.
"""

from __future__ import annotations

import os

import pytest

# The variables that may skip tests, each for what it names.
ALLOWING = ("PORTICO_SKIP_POSTGRES", "PORTICO_SKIP_PEERS")


def skipping(variable: str) -> bool:
    """Whether `variable` (one of `ALLOWING`) is set to 1."""
    assert variable in ALLOWING, variable
    return os.environ.get(variable) == "1"


def skip_or_fail(variable: str, missing: str) -> None:
    """Skips the test if `variable` is 1, else fails it: `missing` says what is absent and how
    to get it."""
    if skipping(variable):
        pytest.skip(f"{variable}=1: {missing}")
    pytest.fail(f"{missing}; or set {variable}=1 to skip the tests that need it", pytrace=False)


def unexpected(report) -> str | None:
    """Why `report` (of a test or a collection) hides a test that did not run or was expected to
    fail, or `None` when it is a pass, a failure, or a skip an `ALLOWING` variable asked for."""
    if hasattr(report, "wasxfail"):
        return (
            f"xfail ({report.wasxfail or 'no reason'}): a test expected to fail cannot fail; "
            "fix it or remove it"
        )
    if not report.skipped:
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if any(reason.startswith(f"{v}=1") and skipping(v) for v in ALLOWING):
        return None
    allowing = " or ".join(f"{v}=1" for v in ALLOWING)
    return f"skipped without {allowing}: {reason}"
