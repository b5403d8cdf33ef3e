"""Case files: schema, loading and errors."""
