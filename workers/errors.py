"""Exceptions a durable function raises to reject its promise with a readable reason.

The SDK stores an exception as its class name and `__dict__`, so keep every detail an attribute.
"""


class JobFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
