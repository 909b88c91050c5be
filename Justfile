# tenantdb recipes; each one sets up .venv (and sqld for tests) by itself.

# run the API on the embedded default
run *ARGS:
    python3 scripts/dev.py serve {{ARGS}}

# every test, including the ones that start a real sqld
test *ARGS:
    python3 scripts/dev.py test {{ARGS}}

# ruff (lint and format check) and mypy strict
lint:
    python3 scripts/dev.py lint

# benchmarks: each prints its figures beside the floor measured in the same run
bench *ARGS:
    python3 scripts/dev.py bench {{ARGS}}

# lint and test
check: lint test
