"""The one error the domain logic raises: a user-facing failure that changes nothing."""


class TaskError(Exception):
    """A tool-level error: shown to the caller as `isError` text; the transaction is discarded."""

    def __init__(self, message: str, code: str = "ERROR"):
        super().__init__(message)
        self.message = message
        self.code = code
