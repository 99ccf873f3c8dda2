"""What the scoring entry refuses a request with: an HTTP status and a one-line reason."""

from __future__ import annotations


class RequestError(Exception):
    """A request the scoring entry refuses: an HTTP status (4xx) and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
