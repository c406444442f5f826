"""Local-only tools (never deployed; excluded by .funcignore)."""
