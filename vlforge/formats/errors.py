"""The one error type of vlforge.formats: a bad input field, named by its path in the record."""


class FieldError(ValueError):
    """A record field is missing, mistyped or out of range.

    `.field` is the dotted path of the field (e.g. "refs[1].span") so the render pipeline can report
    "line N, field F: message" and record it as the sample's drop reason.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self):
        # Ray and multiprocessing pickle exceptions; the default reduce would call __init__ with one argument.
        return FieldError, (self.field, self.message)


def describe(value: object, limit: int = 60) -> str:
    """A short repr for error messages, so a huge hostile value cannot flood a log or manifest."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
