"""The AsyncAPI document's receive operations are the running service's subscribers."""

from __future__ import annotations

from tests.integration.notifier.conftest import Notifier
from tests.support import receive_operations_in_docs, subscribers_as_faststream_documents_them


async def test_the_document_lists_what_faststream_says_the_running_subscribers_read(
    notifier: Notifier,
) -> None:
    running = subscribers_as_faststream_documents_them(notifier.runtime)
    assert running
    assert running == receive_operations_in_docs("notifier")
