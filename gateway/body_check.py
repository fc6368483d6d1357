"""What a parsed JSON body must satisfy beyond its fields' types: bounded nesting, no lone surrogates.

Both get past ``json.loads`` and pydantic and then fail far from the client's mistake: a lone
surrogate (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8, so the encoder's cache key and
the upstream request raised ``UnicodeEncodeError`` (a 500, or a 502 blamed on a healthy upstream);
deeply nested values overflow the recursion of the copies and serialisers on the way upstream.
The request models run :func:`check_body` on the raw body before their own validation, so such a
request is a 400 that names the offending field.
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request

MAX_DEPTH = 32  # JSON nesting accepted in a request body (OpenAI tool schemas need far less)


def _is_lone_surrogate_free(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_body(value: Any) -> None:
    """Raise a 400 (``param`` = the field's path) for a lone surrogate or nesting beyond MAX_DEPTH."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise bad_request(f"request body nested deeper than {MAX_DEPTH} levels",
                              param=".".join(path[:MAX_DEPTH]) or None, code="too_deep")
        if isinstance(item, str):
            if not _is_lone_surrogate_free(item):
                raise bad_request("text contains a lone UTF-16 surrogate (not encodable as UTF-8)",
                                  param=".".join(path) or None, code="invalid_unicode")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not _is_lone_surrogate_free(key):
                    raise bad_request("a field name contains a lone UTF-16 surrogate",
                                      param=".".join(path) or None, code="invalid_unicode")
                stack.append((sub, (*path, key)))
        elif isinstance(item, list):
            stack.extend((sub, (*path, str(i))) for i, sub in enumerate(item))
