"""Where tenant databases live. Each backend runs the same engine code (schema_registry)."""
