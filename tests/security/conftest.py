"""The attack tests run the services as the integration tests do: reuse those fixtures."""

from tests.integration.intake.conftest import intake
from tests.integration.notifier.conftest import notifier, notifier_settings, receiver, rules_file

__all__ = ["intake", "notifier", "notifier_settings", "receiver", "rules_file"]
