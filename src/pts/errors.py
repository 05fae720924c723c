"""Errors that reach the user, and the one-line form every message takes."""


class PTSError(Exception):
    """Bad input or an unusable environment: the CLI prints the message as one line and exits 2."""


def first_line(error: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message (its type when empty), capped, for one-line errors."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
