"""Exceptions raised by lychee_integrations.

Every error about user data names the item it is about (``query``, ``document 3``) and
the problem, so that nothing the caller passed in is lost without a trace.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ImageLoadError",
    "InputTooLongError",
    "InvalidDocumentsError",
    "InvalidInputError",
    "LimitExceededError",
    "LycheeError",
    "MissingDependencyError",
    "RemoteError",
    "ServerTimeoutError",
    "ServerUnavailableError",
    "UnsupportedInputError",
]


class LycheeError(Exception):
    """Base class of every error raised by this package."""


class ConfigurationError(LycheeError, ValueError):
    """An option is unknown, out of range or in conflict with another one."""


class MissingDependencyError(LycheeError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


class ModelUnavailableError(ConfigurationError):
    """The checkpoint cannot be had here: no such directory, or a hub id neither cached nor reachable."""


class InvalidInputError(LycheeError, ValueError):
    """A query or document cannot be scored.

    Attributes:
        item: Which input the error is about: ``"query"`` or ``"document N"``.
        index: The document's position in the caller's list, or ``None`` for the query.
        problems: For an error about several documents, one ``(index, message)`` per
            bad document, in input order; otherwise a single entry.

    """

    def __init__(self, item: str, problem: str, *, index: int | None = None) -> None:
        self.item = item
        self.index = index
        self.problem = problem
        self.problems: list[tuple[int | None, str]] = [(index, f"{item}: {problem}")]
        super().__init__(f"{item}: {problem}")


class UnsupportedInputError(InvalidInputError, TypeError):
    """A query or document is of a type the reranker cannot read (``None``, a number, ...)."""


class ImageLoadError(InvalidInputError):
    """An image could not be read: missing file, failed download, corrupt or oversized data."""


class LimitExceededError(InvalidInputError):
    """A request is over one of the limits it may use (images per item or request, decoded pixels).

    The service answers it with 413. The message names the item, the limit and its value.

    Attributes:
        limit: The limit's name (``"max_request_pixels"``).
        value: The limit's value.

    """

    def __init__(self, item: str, problem: str, *, limit: str, value: int, index: int | None = None) -> None:
        super().__init__(item, f"{problem}, over {limit}={value}", index=index)
        self.limit = limit
        self.value = value


class InputTooLongError(InvalidInputError):
    """A query-document pair cannot fit ``max_length`` even with all its text cut."""


class InvalidDocumentsError(InvalidInputError):
    """Several documents are invalid; :attr:`problems` lists each of them."""

    def __init__(self, errors: list[InvalidInputError], total: int) -> None:
        lines = "; ".join(str(e) for e in errors)
        message = f"{len(errors)} of {total} documents cannot be scored: {lines}"
        super().__init__("documents", message)
        self.args = (message,)  # its text is the message alone, not "documents: ..."
        self.errors = errors
        self.problems = [(e.index, str(e)) for e in errors]


class RemoteError(LycheeError):
    """A reranker server answered with an error the caller cannot fix by changing the inputs.

    Attributes:
        url: The URL the request went to.
        status: The HTTP status, or ``None`` when no answer came.

    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class AuthenticationError(RemoteError, PermissionError):
    """The server refused the API key (HTTP 401 or 403)."""


class ServerUnavailableError(RemoteError, ConnectionError):
    """The server could not be reached, or stayed busy (429/503) through every retry."""


class ServerTimeoutError(ServerUnavailableError, TimeoutError):
    """The server did not answer within the timeout."""
