"""Errors that reach the user."""


class PTSError(Exception):
    """Bad input or an unusable environment: the CLI prints the message as one line and exits 2."""
