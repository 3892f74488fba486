"""``@upstream_shape``: a translator of upstream answers fails as a 502, never as a 500.

The translators of what vendors answer (``openai.chat_response_from_dict``,
``anthropic.chat_response_from_message``, the stream translators, ...) read
JSON whose shape the gateway does not control: a field may be missing, null,
or of another type. Checking every field would double those translators; the
fuzz targets (``tests/fuzz``) showed where they fail instead, and each such
failure (``AttributeError``, ``KeyError``, ``IndexError``, ``TypeError``,
``ValueError``) is the upstream's fault, so it becomes the
``UpstreamBadResponseError`` a malformed answer already is: a 502 the router
may retry elsewhere, not an internal error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from modelyard.errors import UpstreamBadResponseError

P = ParamSpec("P")
R = TypeVar("R")

SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)


def upstream_shape(translate: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(translate)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return translate(*args, **kwargs)
        except SHAPE_ERRORS as exc:
            raise UpstreamBadResponseError(
                f"the upstream's answer has an unexpected shape ({type(exc).__name__} in "
                f"{translate.__name__})"
            ) from exc

    return checked


MAX_TOKENS = 2**40  # a trillion: above any real count, and four of them still fit 64 bits


def tokens(value: Any) -> int:
    """A token count an upstream reported, kept within 0 and ``MAX_TOKENS``.

    A negative count would credit a budget; a huge one would overflow the
    64-bit integers that JSON writers and the ledger hold.
    """
    return max(0, min(int(value or 0), MAX_TOKENS))


MAX_INDEX = 2**31  # of a choice, candidate, content block or tool call


def index(value: Any) -> int:
    """A position an upstream reported; out of range, the answer is malformed (a 502)."""
    n = int(value)
    if not 0 <= n < MAX_INDEX:
        raise ValueError(f"index {n} is out of range")
    return n
