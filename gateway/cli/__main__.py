"""``python -m gateway.cli``: the same as the ``jicai-gateway`` command."""

from gateway.cli.main import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    raise SystemExit(main())
