"""The four OpenAPI viewers under /schema render the API in a real headless Chromium, with
every request kept on this machine: a viewer that needs a CDN would stay blank offline.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright for Python; as root the
fixture installs it with apt-get when it is missing (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SUMMARY = "Provision and sync a user's database on sign-in"  # POST /api/user/initialize
# Elements opens on an overview with the tags folded: its hash route opens the operation.
VIEWERS = ["redoc", "swagger", "elements#/operations/initializeUser", "rapidoc"]


def ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = shutil.which("apt-get") or "apt-get"
    subprocess.run([apt, "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run([apt, "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=900)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("viewer", VIEWERS)
def test_viewer_renders_the_operations_offline(
    viewer: str, browser: Browser, serve: Any, tmp_path: Path
) -> None:
    server = serve()
    local = urlsplit(server.url).netloc
    requested: list[str] = []
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob", "about"} or parts.netloc == local:
            route.continue_()
        else:  # would leave the machine: refused, and the test fails below
            elsewhere.append(url)
            route.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", only_this_server)
        page.goto(f"{server.url}/schema/{viewer}", wait_until="load")

        # Playwright's text locator reaches into open shadow roots (RapiDoc, Elements).
        summary = page.get_by_text(SUMMARY).filter(visible=True).first
        summary.wait_for(state="visible", timeout=30_000)
        shot = tmp_path / f"{viewer.split('#', maxsplit=1)[0]}.png"
        page.screenshot(path=str(shot))

        # What the page shows: the operation's summary, on screen, in the screenshot.
        box = summary.bounding_box()
        assert box is not None
        assert box["width"] > 50
        assert box["height"] > 5
        assert 0 <= box["x"] < 1280
        assert 0 <= box["y"] < 900
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
        for tag in ("admin: tenants", "admin: rollouts", "health"):
            assert page.get_by_text(tag, exact=True).count() >= 1, (viewer, tag)
    finally:
        context.close()

    assert elsewhere == [], f"{viewer} tried to reach beyond this machine: {elsewhere}"
    assert errors == [], f"{viewer} raised in the page: {errors}"
    assert any("/schema/assets/" in url for url in requested), requested
