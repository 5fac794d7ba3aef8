"""The one exception type a user can cause through audio input."""


class AudioError(Exception):
    """Bad audio input (missing file, not audio, wrong channels); the message is one line for the user."""
