"""The command line, one module per command group; `python -m engine` is its entry (engine/cli/main.py)."""
