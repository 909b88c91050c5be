"""The `tenantdb` command: run the API and mint development tokens.

Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from types import ModuleType

import msgspec
import structlog

from schema_registry import RegistryError, load_registry
from service.auth import mint_token
from service.commands import db as db_commands
from service.commands import dump as dump_commands
from service.commands import fleet as fleet_commands
from service.commands import health as health_commands
from service.commands import registry as registry_commands
from service.config import ConfigError, Settings, load_settings
from service.errors import ServiceError
from service.logs import configure_logging

log = structlog.get_logger("tenantdb.cli")

# Operator command groups, each `register(commands)`: add a module here to add a group.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    registry_commands,
    db_commands,
    fleet_commands,
    health_commands,
    dump_commands,
)

DEV_SECRET_FILE = ".dev-jwt-secret"  # noqa: S105 - a file name, not a secret
EPILOG = """\
examples:
  tenantdb serve                       # embedded default on 127.0.0.1:8000, data in ./data
  tenantdb serve --host 0.0.0.0 --port 9000
  tenantdb token alice                 # a development token for user alice
  tenantdb token ops --admin --ttl 600 # an admin token valid for 10 minutes

exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.
Settings come from TENANTDB_* environment variables (see README, "Configuration").
"""


def with_dev_secret(settings: Settings) -> Settings:
    """In development, make and keep a random HS256 secret when none is configured."""
    if settings.jwt_secret or settings.jwt_public_key_file or settings.jwks_url:
        return settings
    if settings.environment != "development":
        raise ConfigError(
            "TENANTDB_JWT_SECRET, TENANTDB_JWT_PUBLIC_KEY_FILE or TENANTDB_JWKS_URL must be set "
            "outside development"
        )
    path = settings.data_path / DEV_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        log.warning("auth.dev_secret_created", path=str(path))
    return msgspec.structs.replace(settings, jwt_secret=path.read_text().strip())


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 - `tenantdb token` need not load the web stack

    from service.app import create_app  # noqa: PLC0415 - as above

    settings = with_dev_secret(settings)
    registry = load_registry(settings.registry)
    app = create_app(settings, registry)
    if settings.jwt_secret and settings.environment == "development":
        token = mint_token(settings, "demo-user", ttl=24 * 3600)
        sys.stdout.write(
            "tenantdb is starting. Try it (this development token is valid for 24 hours):\n\n"
            f"  curl -s -X POST http://{args.host}:{args.port}/api/user/initialize \\\n"
            f"    -H 'Authorization: Bearer {token}' \\\n"
            "    -H 'Content-Type: application/json' \\\n"
            '    -d \'{"user_id": "demo-user", "email": "demo@example.com"}\'\n\n'
            f"  API docs: http://{args.host}:{args.port}/schema\n\n"
        )
        sys.stdout.flush()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_dev_secret(settings)
    sys.stdout.write(mint_token(settings, args.user_id, admin=args.admin, ttl=args.ttl) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantdb",
        description="A database per user, kept on the current schema without losing a row.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API. Without a configured key, a development secret is "
        "created in the data directory and a working curl example is shown.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.set_defaults(run=_serve)
    token = commands.add_parser(
        "token",
        help="mint a development token (HS256, from the configured secret)",
        description="Print a token for USER_ID signed with TENANTDB_JWT_SECRET (or the "
        "development secret in the data directory).",
    )
    token.add_argument("user_id", metavar="USER_ID")
    token.add_argument("--admin", action="store_true", help="carry the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_token)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        code: int = args.run(args, settings)
    except ConfigError as exc:
        sys.stderr.write(f"tenantdb: configuration error:\n{exc}\n")
        return 2
    except RegistryError as exc:
        sys.stderr.write(f"tenantdb: the schema registry does not validate:\n{exc}\n")
        return 2
    except ServiceError as exc:
        sys.stderr.write(f"tenantdb: {exc.message}\n")
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
