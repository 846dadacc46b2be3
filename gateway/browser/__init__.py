"""The message browser: find a message and follow it to the platforms (API, CLI)."""
