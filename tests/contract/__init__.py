"""Contract suites: the behaviour a port promises, run against each of its implementations."""

import pytest

pytest.register_assert_rewrite(
    "tests.contract.feedback_repository",
    "tests.contract.harnesses",
    "tests.contract.notifier_repository",
    "tests.contract.sla_repository",
    "tests.contract.ticket_repository",
)
