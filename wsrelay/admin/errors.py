"""The one error type of the admin handlers: an HTTP status and what to tell the caller."""


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
