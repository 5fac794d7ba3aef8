"""User-facing errors: the CLI prints the message on one line and exits non-zero."""


class UsageError(Exception):
    """A mistake the user can fix (bad option, bad config); the message names the problem."""
