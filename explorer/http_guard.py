"""HTTP rules Gradio's own routes lack, for a public Space: added through `launch(app_kwargs=...)`.

- No file uploads: the app takes no files, and Gradio's upload routes would store anything sent.
- Request bodies are small: a sentence and a few settings.
- `POST /gradio_api/call/<name>` may leave out trailing arguments that have a documented default
  (Gradio's client and /call/v2 fill them in; plain /call requires every one).
- A /call/v2 request with an unknown or missing argument is a 4xx with one line, not a 500 traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

log = logging.getLogger("explorer")

API_PREFIX = "/gradio_api"
FILE_ROUTES = ("/upload", "/process_recording")  # every Gradio route that stores or processes a file
MAX_BODY_BYTES = 256 * 1024  # 20,000 characters of text as JSON is at most ~120 KB
REQUIRED = object()  # marks an argument with no default


def _path(scope) -> str:
    return scope["path"].rstrip("/")


class Guard:
    """Pure ASGI middleware (it must not buffer the SSE responses Gradio streams)."""

    def __init__(self, app, api_defaults: dict[str, list[Any]]):
        self.app = app
        self.api_defaults = api_defaults  # api name → one default per argument, REQUIRED where there is none

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = _path(scope)
        if any(path.endswith(API_PREFIX + route) for route in FILE_ROUTES):
            log.info("refused POST %s: this app takes no files", path)
            return await PlainTextResponse("This app takes no file uploads.", status_code=403)(
                scope, receive, send
            )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return await too_large(path, length.decode(errors="replace"), scope, receive, send)
        # Read the whole (small) body here: a chunked one has no length to check up front.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                return await too_large(path, f"over {len(body)}", scope, receive, send)
        name = path.rsplit(f"{API_PREFIX}/call/", 1)[-1] if f"{API_PREFIX}/call/" in path else None
        if name in self.api_defaults:
            body = with_defaults(body, self.api_defaults[name])
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect, as Starlette does
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def too_large(path: str, size: str, scope, receive, send):
    log.info("refused POST %s: body of %s bytes", path, size)
    return await PlainTextResponse(f"Request body over {MAX_BODY_BYTES:,} bytes.", status_code=413)(
        scope, receive, send
    )


def with_defaults(body: bytes, defaults: list[Any]) -> bytes:
    """`{"data": [...]}` with left-out trailing arguments filled from `defaults`; anything else unchanged."""
    try:
        payload = json.loads(body)
        data = payload["data"]
    except (ValueError, KeyError, TypeError):
        return body  # Gradio answers malformed bodies itself
    if not isinstance(data, list) or len(data) >= len(defaults):
        return body
    missing = defaults[len(data) :]
    if any(d is REQUIRED for d in missing):
        return body
    payload["data"] = data + missing
    return json.dumps(payload).encode()


def call_v2_errors() -> dict[type[Exception], Callable[[Request, Exception], Awaitable[Any]]]:
    """Exception handlers for `FastAPI(exception_handlers=...)`: /call/v2 argument errors become 4xx.

    Gradio raises TypeError (unknown or missing argument) and KeyError (no such endpoint) there;
    the same exceptions anywhere else are re-raised, so real bugs still give a 500 and a traceback.
    """

    async def handle(request: Request, exc: Exception):
        path = request.url.path.rstrip("/")
        marker = f"{API_PREFIX}/call/v2/"
        if marker not in path:
            raise exc
        name = path.rsplit(marker, 1)[-1]
        if isinstance(exc, KeyError) and exc.args == ("/" + name,):
            status, message = 404, f"No API endpoint named {name!r}."
        elif isinstance(exc, TypeError):
            status, message = 422, str(exc).split(". Please click")[0] + "."
        else:
            raise exc
        log.info("refused POST %s: %s", path, message)
        return JSONResponse({"detail": message}, status_code=status)

    return {TypeError: handle, KeyError: handle}
