"""The one error type the CLI and the app show as a plain paragraph instead of a traceback."""


class MatchupError(Exception):
    """A failure the user can act on; its message says what to do."""
