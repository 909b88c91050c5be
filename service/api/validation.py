"""Request bodies: JSON only, and JSON the decoder cannot take is the client's error.

Litestar turns malformed JSON into a 400 but lets two decoder errors through as 500s:
nesting past the interpreter's recursion limit (RecursionError) and invalid UTF-8 inside
a string (UnicodeDecodeError). Every body the API reads is JSON (RFC 8259), so anything
declared otherwise is 415.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.types import Scope

from service.api.deps import header
from service.errors import BadRequest, ServiceError

_CONTENT_TYPE: Final = b"content-type"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


def media_type(scope: Scope) -> str:
    """The request's media type: what precedes any parameter (RFC 9110, 8.3.1), read from
    the scope without the Headers object and parameter parsing `content_type` builds."""
    return (header(scope, _CONTENT_TYPE) or "").partition(";")[0]


def is_json(media_type: str) -> bool:
    """application/json, or a structured syntax suffix type (RFC 6839), e.g. ...+json."""
    kind = media_type.strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class JsonRequest(Request[Any, Any, Any]):
    """The app's request class: `json()` is what every JSON body parameter reads."""

    async def json(self) -> Any:
        kind = media_type(self.scope)
        if not is_json(kind):
            shown = kind or "none"
            raise UnsupportedMediaType(
                f"the body must be JSON: send Content-Type: application/json (got {shown})"
            )
        try:
            return await super().json()
        except RecursionError:
            raise BadRequest("JSON is nested too deeply") from None
        except UnicodeDecodeError:
            raise BadRequest("JSON is malformed: a string is not valid UTF-8") from None
