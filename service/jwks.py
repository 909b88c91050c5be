"""Signing keys from the identity provider's JWKS, fetched so that a slow or failing
endpoint never holds sign-ins up.

- One fetch at a time, shared by every sign-in waiting for it (single flight).
- No sign-in waits longer than `timeout` for it: the fetch goes on in its thread and its
  keys serve the sign-ins that come after.
- Keys already known keep working while a refresh fails or hangs; a stale set is
  refreshed in the background after `lifespan`.
- A `kid` nobody knows triggers a fetch at most every `cooldown` seconds, so forged tokens
  cannot flood the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import jwt
import structlog

log = structlog.get_logger("tenantdb.jwks")
FETCH_TIMEOUT = 30.0  # seconds one JWKS request may take before it counts as failed


class JwksKeys:
    def __init__(self, url: str, *, timeout: float, cooldown: float, lifespan: float = 300.0):
        # PyJWKClient does the HTTP and parsing; its own cache is off: ours keeps the keys.
        # The fetch may take longer than a sign-in waits (FETCH_TIMEOUT): a slow provider's
        # keys still arrive, for the sign-ins after.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=FETCH_TIMEOUT)
        self._timeout = timeout
        self._cooldown = cooldown
        self._lifespan = lifespan
        self._keys: dict[str, Any] = {}  # kid -> key, from the last fetch that worked
        self._fetched_at = float("-inf")  # monotonic time of the last fetch that worked
        self._tried_at = float("-inf")  # ... and of the last attempt
        self._flight: asyncio.Task[None] | None = None

    async def key(self, kid: str | None) -> Any:
        """The key for `kid`; jwt.PyJWKClientError when there is none in time."""
        now = time.monotonic()
        if kid in self._keys:
            if now - self._fetched_at > self._lifespan:
                self._start()  # stale: refresh in the background, keep serving this key
            return self._keys[kid]
        if now - self._tried_at >= self._cooldown or not self._keys:
            flight = self._start()
            with contextlib.suppress(TimeoutError):
                # shield: a sign-in that gives up does not cancel the fetch others wait for
                await asyncio.wait_for(asyncio.shield(flight), self._timeout)
        if kid in self._keys:
            return self._keys[kid]
        raise jwt.PyJWKClientError(f"no key with kid {kid!r} in the JWKS (or it did not answer)")

    def _start(self) -> asyncio.Task[None]:
        if self._flight is None or self._flight.done():
            self._tried_at = time.monotonic()
            self._flight = asyncio.create_task(self._fetch())
        return self._flight

    async def _fetch(self) -> None:
        try:
            # Network I/O: in a thread, never on the loop.
            found = await asyncio.to_thread(self._client.get_signing_keys)
        except jwt.PyJWKClientError as exc:  # unreachable, slow, or not a JWKS
            log.warning("jwks.fetch_failed", error=str(exc), keys_kept=len(self._keys))
            return
        self._keys = {k.key_id: k.key for k in found if k.key_id is not None}
        self._fetched_at = time.monotonic()
        log.info("jwks.fetched", keys=len(self._keys))
