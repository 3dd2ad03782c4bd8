"""Attachment contents in GridFS, named by their sha256, and the route that serves them.

Contents are stored before the command naming them is published, so every URL in a
command resolves. The same file mailed twice (a relay's second delivery, a screenshot
sent to two tickets) is stored once. Files are stored under a random id and found by
name (the digest): two concurrent uploads of one file leave two identical copies, never
a half-written one.

Downloads are always `application/octet-stream` with `Content-Disposition: attachment`
and `nosniff`: a requester's HTML or SVG must never run in an agent's browser on this
origin (the type the mail claimed is in `X-Attachment-Content-Type`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import StreamingResponse
from gridfs import AsyncGridFSBucket, NoFile

from shared.http import ProblemError, require_bearer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from gridfs.asynchronous.grid_file import AsyncGridOut
    from pymongo.asynchronous.database import AsyncDatabase

    from services.mail_gateway.gateway import Kept
    from services.mail_gateway.metrics import GatewayMetrics
    from services.mail_gateway.settings import MailGatewaySettings
    from shared.mongo import Document

BUCKET = "attachments"
DELETE_BATCH = 1000  # digests per query when erasing
SHA256 = r"^[0-9a-f]{64}$"


class GridFsAttachments:
    """The gateway's attachment store (its own database, bucket `attachments`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self._files = db[f"{BUCKET}.files"]
        self._chunks = db[f"{BUCKET}.chunks"]

    async def ensure_indexes(self) -> None:
        await self._files.create_index([("filename", 1), ("uploadDate", 1)])

    async def has(self, sha256: str) -> bool:
        return await self._files.find_one({"filename": sha256}, {"_id": 1}) is not None

    async def put(self, kept: Kept) -> bool:
        """Stores `kept` unless a copy exists; True when this call stored it."""
        if await self.has(kept.sha256):
            return False
        await self._bucket.upload_from_stream(
            kept.sha256,
            kept.content,
            metadata={"content_type": kept.content_type, "name": kept.filename},
        )
        return True

    async def delete(self, digests: Sequence[str]) -> int:
        """Deletes every copy of these contents; the number of files deleted (0 when none
        is left, so a repeated delete deletes nothing more). Chunks go first: a delete cut
        short leaves a file entry that the next one finds, never contents nobody can."""
        deleted = 0
        for start in range(0, len(digests), DELETE_BATCH):
            batch = list(digests[start : start + DELETE_BATCH])
            found = self._files.find({"filename": {"$in": batch}}, {"_id": 1})
            ids = [doc["_id"] async for doc in found]
            if not ids:
                continue
            await self._chunks.delete_many({"files_id": {"$in": ids}})
            deleted += (await self._files.delete_many({"_id": {"$in": ids}})).deleted_count
        return deleted

    async def open(self, sha256: str) -> AsyncGridOut | None:
        try:
            return await self._bucket.open_download_stream_by_name(sha256)
        except NoFile:
            return None


async def _chunks(grid_out: AsyncGridOut) -> AsyncIterator[bytes]:
    while chunk := await grid_out.readchunk():
        yield chunk


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()


def attachment_routes(cfg: MailGatewaySettings, metrics: GatewayMetrics) -> APIRouter:
    router = APIRouter(tags=["attachments"])

    @router.get(
        "/v1/attachments/{sha256}",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def download(
        request: Request,
        sha256: Annotated[str, Path(pattern=SHA256, description="The content's sha256 (hex).")],
        authorization: Annotated[str | None, Header(max_length=512)] = None,
    ) -> StreamingResponse:
        """The content of a mail attachment the gateway kept, as the URL in its command."""
        try:
            require_bearer(cfg.attachments_api_key, authorization, "attachments API key")
        except ProblemError:
            metrics.downloads.labels("unauthenticated").inc()
            raise
        store: GridFsAttachments = request.app.state.attachments
        grid_out = await store.open(sha256)
        if grid_out is None:
            metrics.downloads.labels("not_found").inc()
            raise ProblemError(404, "Unknown attachment", f"No attachment {sha256}.")
        meta: Mapping[str, Any] = grid_out.metadata or {}
        name = str(meta.get("name") or sha256)
        metrics.downloads.labels("served").inc()
        return StreamingResponse(
            _chunks(grid_out),
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(grid_out.length),
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
                "X-Content-Type-Options": "nosniff",
                "X-Attachment-Content-Type": _ascii(str(meta.get("content_type", "")))[:100],
                "ETag": f'"{sha256}"',
                "Cache-Control": "private, max-age=3600",
            },
        )

    return router
