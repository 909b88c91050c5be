"""The embedded default: one SQLite file per user under the data directory."""

from service.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
