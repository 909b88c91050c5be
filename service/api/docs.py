"""The OpenAPI document's frame (title, tags, security scheme) and its four viewers under
/schema, whose scripts and styles are served from this package (static/, see its
VERSIONS.md): a viewer that loads them from a CDN renders blank where there is no internet,
and sends every reader's address to a third party where there is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    RapidocRenderPlugin,
    RedocRenderPlugin,
    StoplightRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).parent / "static"
ASSETS = "/schema/assets"
# No icon request at all (the default points at a CDN): `data:,` is an empty icon.
_FAVICON = "<link rel='icon' href='data:,'>"

BEARER = "bearer"
SECURED: list[dict[str, list[str]]] = [{BEARER: []}]  # for controllers behind a token

TAGS = [
    Tag(
        name="sign-in",
        description="What an app calls for its users: provision and sync a user's database "
        "on sign-in, read its version, export it, delete it. A user's token acts on its own "
        "`user_id`; an admin's on any.",
    ),
    Tag(
        name="admin: tenants",
        description="Every tenant's catalog row, one tenant's detail with a dry run, and the "
        "audit trail of applied changes (admin token).",
    ),
    Tag(
        name="admin: rollouts",
        description="Bring the whole fleet to a version in the background, and follow it "
        "(admin token).",
    ),
    Tag(
        name="health",
        description="Liveness for load balancers, a detailed report for operators, and "
        "Prometheus metrics.",
    ),
]

DESCRIPTION = """\
On each sign-in your app calls `POST /api/user/initialize` with the user's token: tenantdb
creates the user's SQLite/libSQL database if it is missing, applies the additive schema
changes the registry's current version needs, and answers with `database_url` and
`database_token` for the app's client.

**Authentication.** `Authorization: Bearer <JWT>` signed by your identity provider (or the
shared secret). The user id is the token's `sub` claim; a token whose roles include the
admin role (`tenantdb:admin` by default) may act on any user and call the admin endpoints.
`/health`, `/api/health` and `/metrics` need no token (`/metrics` takes a static token
when `TENANTDB_METRICS_TOKEN` is set).

**Errors.** Every error is JSON, `{"success": false, "message", "status_code", "code"}`:
`message` says what to do next, `code` is stable for a client to branch on. A database's
faults have their own codes: `database_missing` (404), `database_damaged` (409),
`database_busy` (503, with `Retry-After`), `storage_unavailable` (503), `storage_full` (507).
"""


# The viewers' pages may load only from this server (and inline/data:/blob: parts of
# their own bundles): ReDoc's sidebar, for one, shows a logo from cdn.redoc.ly, which
# would tell a third party who reads the docs. The browser refuses such a load.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "worker-src 'self' blob:; "
    "connect-src 'self'"
)


def _asset(path: str) -> str:
    return f"{ASSETS}/{path}"


class _Rapidoc(RapidocRenderPlugin):
    """RapiDoc fetches Google Fonts unless told not to (`load-fonts="false"`)."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        return page.replace(b"<rapi-doc ", b'<rapi-doc load-fonts="false" ', 1)


def openapi_config(version: str) -> OpenAPIConfig:
    """The document's frame; the operations describe themselves (controllers in api/)."""
    return OpenAPIConfig(
        title="tenantdb",
        version=version,
        summary="A database per user, kept on the current schema without losing a row.",
        description=DESCRIPTION,
        tags=TAGS,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A JWT from your identity provider; `sub` is the user id",
                )
            }
        ),
        # No document-wide security: the controllers behind a token declare it, so the
        # public routes (/health, /api/health, /metrics) carry no requirement.
        path="/schema",
        openapi_router=Router(
            path="/schema",
            route_handlers=[],
            include_in_schema=False,
            response_headers=[
                ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY)
            ],
        ),
        render_plugins=[
            RedocRenderPlugin(
                js_url=_asset("redoc/redoc.standalone.js"), google_fonts=False, favicon=_FAVICON
            ),
            SwaggerRenderPlugin(
                js_url=_asset("swagger-ui/swagger-ui-bundle.js"),
                css_url=_asset("swagger-ui/swagger-ui.css"),
                standalone_preset_js_url=_asset("swagger-ui/swagger-ui-standalone-preset.js"),
                favicon=_FAVICON,
            ),
            StoplightRenderPlugin(
                js_url=_asset("elements/web-components.min.js"),
                css_url=_asset("elements/styles.min.css"),
                favicon=_FAVICON,
            ),
            _Rapidoc(js_url=_asset("rapidoc/rapidoc-min.js"), favicon=_FAVICON),
            JsonRenderPlugin(),
            YamlRenderPlugin(),
        ],
    )


def docs_assets() -> Router:
    """The viewers' files at /schema/assets/..., public and cached (they change only with a
    release of tenantdb)."""
    return create_static_files_router(
        path=ASSETS,
        directories=[STATIC],
        name="docs-assets",
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
