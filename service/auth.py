"""Who is calling: PyJWT verification of the app's bearer tokens.

The algorithm comes from an allow-list, and the key from the algorithm's family: HS*
tokens are checked only against the shared secret, RS/ES/PS/EdDSA tokens only against
the configured public key or the JWKS. So `none` never verifies, and a public key can
never be used as an HMAC secret (algorithm confusion).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Final

import jwt
import msgspec
import structlog

from service.config import SYMMETRIC, Settings
from service.errors import BadRequest, Forbidden, Unauthorized
from service.jwks import JwksKeys

USER_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
_USER_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

log = structlog.get_logger("tenantdb.auth")


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    admin: bool = False

    def require(self, user_id: str) -> None:
        """A caller acts on its own user_id only, unless it is an admin."""
        if not self.admin and user_id != self.user_id:
            raise Forbidden(
                "this token may only act on its own user_id; "
                "use a token for that user or one with the admin role"
            )


def check_user_id(user_id: str) -> str:
    """Refuse anything but 1-64 of [A-Za-z0-9_-] before it nears a path or a namespace."""
    if not isinstance(user_id, str) or _USER_ID.fullmatch(user_id) is None:
        raise BadRequest("user_id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return user_id


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._allowed = frozenset(settings.jwt_algorithms)
        self._public_key: Any = None
        if settings.jwt_public_key_file:
            self._public_key = Path(settings.jwt_public_key_file).read_text(encoding="utf-8")
        self._jwks = (
            JwksKeys(
                settings.jwks_url, timeout=settings.jwks_timeout, cooldown=settings.jwks_cooldown
            )
            if settings.jwks_url
            else None
        )

    async def authenticate(self, authorization: str | None) -> Identity:
        if not authorization:
            raise Unauthorized(
                "missing Authorization: Bearer <token> header", error="invalid_request"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        claims = await self._verify(token.strip())
        user_id = claims.get(self._settings.jwt_user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise Unauthorized(f"token has no '{self._settings.jwt_user_claim}' claim")
        return Identity(user_id=user_id, admin=self._is_admin(claims))

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise Unauthorized(f"token algorithm {alg!r} is not allowed")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("token header 'kid' must be a string")
        key = await self._key_for(alg, kid)
        s = self._settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=s.jwt_issuer,
                audience=s.jwt_audience,
                leeway=s.jwt_leeway,
                options={"require": ["exp"], "verify_aud": s.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            if s.environment == "development" and alg in SYMMETRIC:
                log.warning(
                    "auth.token_not_signed_by_this_server",
                    reason="a well-formed token not signed by this server's development "
                    "secret: `tenantdb token` run with another TENANTDB_DATA_DIR signs with "
                    "that directory's .dev-jwt-secret",
                )
            raise Unauthorized("token signature or format is invalid") from None
        except (jwt.PyJWTError, TypeError, ValueError):
            # Any header or claim the library cannot take (a `crit` extension it does not
            # know, a key of the wrong type for the header): a token that cannot be
            # verified, so 401 whatever the cause.
            raise Unauthorized("token signature or format is invalid") from None

    async def _key_for(self, alg: str, kid: str | None) -> Any:
        if alg in SYMMETRIC:
            if not self._settings.jwt_secret:
                raise Unauthorized("HS* tokens are not accepted: no shared secret is configured")
            return self._settings.jwt_secret
        if self._jwks is not None:
            try:
                return await self._jwks.key(kid)
            except jwt.PyJWKClientError as exc:
                raise Unauthorized(f"no signing key for this token in the JWKS: {exc}") from None
        return self._public_key

    def _is_admin(self, claims: dict[str, Any]) -> bool:
        role = self._settings.admin_role
        if not role.strip():  # refused at start-up too: an empty name would match anyone
            return False
        roles = claims.get("roles")
        scope = claims.get("scope")
        scp = claims.get("scp")
        return (
            (isinstance(roles, list) and role in roles)
            or claims.get("role") == role
            or (isinstance(scope, str) and role in scope.split())
            or (isinstance(scp, list) and role in scp)
            or (isinstance(scp, str) and role in scp.split())  # Azure AD sends a string
        )


def mint_token(settings: Settings, user_id: str, *, admin: bool = False, ttl: int = 3600) -> str:
    """A development token signed with the shared secret (HS256)."""
    if not settings.jwt_secret:
        raise BadRequest("TENANTDB_JWT_SECRET is not set: nothing to sign a token with")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": check_user_id(user_id), "iat": now, "exp": now + ttl}
    if admin:
        claims["roles"] = [settings.admin_role]
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
