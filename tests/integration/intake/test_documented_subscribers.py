"""The AsyncAPI document's receive operations are the running service's subscribers."""

from __future__ import annotations

from tests.integration.intake.conftest import Intake
from tests.support import receive_operations_in_docs, subscribers_as_faststream_documents_them


async def test_the_document_lists_what_faststream_says_the_running_subscribers_read(
    intake: Intake,
) -> None:
    running = subscribers_as_faststream_documents_them(intake.runtime)
    assert running
    assert running == receive_operations_in_docs("intake")
