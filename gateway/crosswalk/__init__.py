"""The crosswalk (对码) of a running gateway: its holder, service, HTTP API and CLI."""
