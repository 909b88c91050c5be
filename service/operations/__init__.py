"""Operator features around the tenants: backups, schema dumps, metrics."""
