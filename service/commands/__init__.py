"""The `tenantdb` subcommands beyond serve and token, one module per group.

Each module has `register(commands)` adding its parsers to the top-level subparsers; a
parser's `run` default is called as `run(args, settings) -> exit code`.
"""
