"""Requester erasure in the mail gateway: the attachment contents it keeps.

The gateway keeps files by sha256 only, with no requester id, so it cannot tell whose a
file is. intake can: its erasure request names the digests of the requester's files that
no other requester's ticket names (`attachment_digests`), and the gateway deletes those.
Retention (`tickets_only`) names none, and a redelivered request finds nothing left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shared.events import RequesterErasureRequested


class AttachmentStore(Protocol):
    """What the eraser needs of the store (`GridFsAttachments`)."""

    async def delete(self, digests: Sequence[str]) -> int: ...


class AttachmentEraser:
    def __init__(self, store: AttachmentStore) -> None:
        self._store = store

    async def erase(self, request: RequesterErasureRequested) -> Mapping[str, int]:
        return {"attachments": await self._store.delete(request.attachment_digests)}
