"""deploy/compose.yaml and deploy/Dockerfile read as the machine would, to run their
services as local processes: compose's variable interpolation, the image's ENV,
ENTRYPOINT, CMD and HEALTHCHECK, and container paths and ports mapped onto a folder and
free loopback ports. Docker itself is not needed, and nothing here adds to what they say.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


class ComposeError(Exception):
    """What `docker compose` itself would refuse with."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise ComposeError(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml, parsed, every string interpolated with `env`."""

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return interpolate(node, env)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return dict(walk(data))


class Image:
    """What deploy/Dockerfile declares for the running container."""

    def __init__(self, text: str) -> None:
        joined = re.sub(r"\\\n\s*", " ", text)
        self.env: dict[str, str] = {}
        self.entrypoint: list[str] = []
        self.cmd: list[str] = []
        self.healthcheck: list[str] = []
        for line in joined.splitlines():
            word, _, rest = line.strip().partition(" ")
            if word == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    self.env[key] = value
            elif word == "ENTRYPOINT":
                self.entrypoint = json.loads(rest)
            elif word == "CMD":
                self.cmd = json.loads(rest)
            elif word == "HEALTHCHECK":
                self.healthcheck = shlex.split(rest.split(" CMD ", 1)[1])


def dockerfile() -> Image:
    return Image((DEPLOY / "Dockerfile").read_text())


class Mapper:
    """Container paths to host paths, container ports to free loopback ports."""

    def __init__(self, paths: dict[str, Path], ports: dict[int, int], services: set[str]) -> None:
        self.paths = dict(sorted(paths.items(), key=lambda kv: -len(kv[0])))
        self.ports = ports
        self.services = services

    def __call__(self, text: str) -> str:
        for inside, outside in self.paths.items():
            text = re.sub(rf"(^|=){re.escape(inside)}(?=$|/)", rf"\g<1>{outside}", text)
        hosts = "|".join(["0\\.0\\.0\\.0", "127\\.0\\.0\\.1", "localhost", *self.services])

        def port(match: re.Match[str]) -> str:
            host, sep, number = match.group(1), match.group(2), int(match.group(3))
            if number not in self.ports:
                return match.group(0)
            host = "127.0.0.1" if host in self.services or host == "0.0.0.0" else host  # noqa: S104
            return f"{host}{sep}{self.ports[number]}"

        return re.sub(rf"\b({hosts})([:/])(\d+)\b", port, text)
