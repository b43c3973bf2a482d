"""Checks at the edge, before any handler or database sees a request: request size and control characters.

- **Size**: a JSON body over ``max_json_bytes`` (1 MiB by default), a multipart upload over
  ``max_upload_bytes``, anything else (msgpack observations for remote inference) over ``max_body_bytes`` is
  answered 413, by its ``Content-Length`` when it has one, else as soon as the streamed body passes the limit.
- **Control characters** (C0 and DEL; NUL included) in the URL's path or query are answered 422: no name, id or
  filter of ours contains one, and PostgreSQL refuses NUL in text (a 500 before). JSON bodies are checked by the
  schemas (``serving.schemas.Body``), integer ids by their path types (``serving.schemas.RowId``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from serving.settings import Settings

Scope = dict[str, Any]
Message = dict[str, Any]


def has_control_characters(data: bytes | str) -> bool:
    """C0 controls (NUL included) or DEL; tab, newline and carriage return are controls too here."""
    values = data.encode() if isinstance(data, str) else data
    return any(b < 0x20 or b == 0x7F for b in values)


class EdgeChecks:
    """Pure ASGI middleware (see the module docstring)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, content_type: str) -> int:
        if content_type.startswith("application/json"):
            return self.settings.max_json_bytes
        if content_type.startswith("multipart/"):
            return self.settings.max_upload_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url = bytes(scope.get("raw_path") or scope["path"].encode()) + b"?" + bytes(scope.get("query_string", b""))
        if has_control_characters(unquote_to_bytes(url)):
            await _reply(send, 422, "invalid_request", "control characters are not allowed in the URL")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        limit = self.limit(headers.get("content-type", ""))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, "too_large", f"the body is {int(declared)} bytes; the limit is {limit}")
            return
        state = {"received": 0, "too_large": False, "started": False}

        async def counted_receive() -> Message:
            if state["too_large"]:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:  # a streamed body without (or past) its Content-Length
                    state["too_large"] = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state["too_large"]:
                    return  # the 413 below answers instead
                state["started"] = True
            elif state["too_large"] and not state["started"]:
                return
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not state["too_large"]:
                raise
        if state["too_large"] and not state["started"]:
            await _reply(send, 413, "too_large", f"the body is over the limit of {limit} bytes")


async def _reply(send: Any, status: int, code: str, reason: str) -> None:
    body = json.dumps({"error": code, "reason": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
