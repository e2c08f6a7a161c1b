"""Parsing untrusted JSON text (dump lines, task records, annotation files, tar members).

`json.loads` raises RecursionError on nesting deeper than the interpreter's limit, which no `except
ValueError` catches: every reader goes through `parse_json`, so such a document is an error with a reason
like any malformed one, never a crash.
"""

import json
from typing import Any


class JsonTextError(ValueError):
    """Text that is not usable JSON; `too_deep` when only its nesting is the problem."""

    def __init__(self, detail: str, too_deep: bool = False) -> None:
        super().__init__(detail)
        self.too_deep = too_deep


def parse_json(text: str | bytes) -> Any:
    """The JSON value of `text`; JsonTextError ('MSG at column N', 'not UTF-8' or 'nested too deeply')."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"{exc.msg} at column {exc.colno}") from None
    except UnicodeDecodeError:
        raise JsonTextError("not UTF-8") from None
    except RecursionError:
        raise JsonTextError("nested too deeply", too_deep=True) from None
