"""Filters are bounded before they are parsed: length, nesting and AND/OR clauses.

cql2's parser recurses on the C stack and crashes the interpreter (SIGSEGV) on deeply nested
or very long expressions, so CQL2 text (:func:`check_filter_size`) and CQL2-JSON
(:func:`check_json_size`) are measured here first, without parsing and without recursion,
and refused beyond :data:`MAX_FILTER_LENGTH`, :data:`MAX_FILTER_DEPTH` or
:data:`MAX_FILTER_CLAUSES` with a message that says what to write instead.

Example:
    >>> text_shape("NOT (a = 1 OR b = 2) AND c = 3")
    (2, 3)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidQueryError

#: The longest filter accepted, in characters (a GET URL this long is already beyond what
#: most servers accept).
MAX_FILTER_LENGTH = 1_000_000
#: The deepest nesting accepted: parentheses plus ``NOT`` s (CQL2-JSON: nested operators).
#: cql2's parser overflows a 512 KiB thread stack (macOS threads, some dask workers) at
#: about 64 levels of ``NOT (``; 32 leaves a margin.
MAX_FILTER_DEPTH = 32
#: The most ``AND``/``OR`` clauses accepted. cql2's parser overflows a 512 KiB thread stack
#: at about 1,000 (an 8 MiB main thread at about 16,000); 500 leaves a margin.
MAX_FILTER_CLAUSES = 500

#: What to write instead of a filter nested too deeply (appended to the error).
DEPTH_ADVICE = (
    "; flatten it (NOT (NOT (x)) is x; alternatives need no nesting: a = 1 OR a = 2, "
    "or a IN (1, 2))"
)
#: What to write instead of a filter with too many clauses (appended to the error).
CLAUSE_ADVICE = (
    "; match many values with IN, e.g. ag:capture_id IN ('a', 'b'), search by ids=[...], "
    "or split the search into several"
)

# Literals ('it''s') and quoted identifiers ("eo:cloud_cover") as cql2 reads them, so that
# nothing inside them counts; then parentheses and the logical keywords.
_TOKENS = re.compile(r"""'[^']*(?:''[^']*)*'|"[^"]*"|[()]|\b(?:and|or|not)\b""",
                     re.IGNORECASE)


def text_shape(text: str) -> tuple[int, int]:
    """The deepest nesting (parentheses and NOTs) and the number of clauses of CQL2 text.

    A linear scan of tokens, no parsing. ``NOT`` binds tighter than ``AND``/``OR``: the NOTs
    pending at a level end at the next ``AND``, ``OR`` or ``)`` of that level. An unclosed
    quote counts what follows as code: over-counting refuses, it never lets through.

    Example:
        >>> text_shape("eo:cloud_cover <= 30 AND platform = 'a AND b'")
        (0, 2)
    """
    pending: list[int] = []  # NOTs pending at each enclosing level
    nots = outer = deepest = clauses = 0
    for match in _TOKENS.finditer(text):
        token = match.group(0).lower()
        if token[0] in "'\"":
            continue
        if token == "(":
            pending.append(nots)
            outer, nots = outer + nots, 0
        elif token == ")":
            if pending:
                outer -= pending.pop()
            nots = 0
        elif token == "not":
            nots += 1
        else:
            clauses += 1
            nots = 0
        deepest = max(deepest, len(pending) + outer + nots)
    return deepest, clauses + 1


def check_filter_size(text: str) -> None:
    """Refuse CQL2 text longer, deeper or with more clauses than the limits, before parsing.

    Raises:
        InvalidQueryError: naming the limit and what to write instead.

    Example:
        >>> check_filter_size("eo:cloud_cover <= 30 AND NOT (platform = 'GRUS-1A')")
        >>> try:
        ...     check_filter_size("NOT (" * 100 + "a = 1" + ")" * 100)
        ... except InvalidQueryError as err:
        ...     print(str(err)[:58])
        the filter nests 200 levels deep (parentheses and NOTs); t
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidQueryError(
            f"the filter is {len(text):,} characters long; the limit is "
            f"{MAX_FILTER_LENGTH:,}. Search with a simpler geometry (e.g. its convex hull or "
            "shapely's simplify()) or split the search into several"
        )
    depth, clauses = text_shape(text)
    if depth > MAX_FILTER_DEPTH:
        raise InvalidQueryError(
            f"the filter nests {depth} levels deep (parentheses and NOTs); the limit is "
            f"{MAX_FILTER_DEPTH}" + DEPTH_ADVICE
        )
    if clauses > MAX_FILTER_CLAUSES:
        raise InvalidQueryError(
            f"the filter has {clauses:,} AND/OR clauses; the limit is {MAX_FILTER_CLAUSES}"
            + CLAUSE_ADVICE
        )


def check_json_size(tree: Any) -> None:
    """Bound CQL2-JSON like text: operator nesting and AND/OR clauses, without recursion.

    Raises:
        InvalidQueryError: naming the limit and what to write instead.

    Example:
        >>> check_json_size({"op": "not", "args": [{"op": "=", "args": [1, 1]}]})
        >>> deep = {"op": "=", "args": [1, 1]}
        >>> for _ in range(40):
        ...     deep = {"op": "not", "args": [deep]}
        >>> try:
        ...     check_json_size(deep)
        ... except InvalidQueryError as err:
        ...     print(str(err)[:64])
        the CQL2-JSON filter nests operators more than 32 levels deep; f
    """
    # node, container depth, operator depth (the root operator is level 0, as in text)
    stack: list[tuple[Any, int, int]] = [(tree, 0, -1)]
    clauses = 1
    while stack:
        node, depth, ops = stack.pop()
        if depth > 4 * MAX_FILTER_DEPTH:  # geometry coordinates nest too, a few levels
            raise InvalidQueryError(
                f"the CQL2-JSON filter nests more than {4 * MAX_FILTER_DEPTH} levels deep"
                + DEPTH_ADVICE
            )
        if isinstance(node, Mapping):
            if "op" in node:
                ops += 1
                if ops > MAX_FILTER_DEPTH:
                    raise InvalidQueryError(
                        f"the CQL2-JSON filter nests operators more than {MAX_FILTER_DEPTH} "
                        "levels deep" + DEPTH_ADVICE
                    )
                args = node.get("args")
                if str(node["op"]).lower() in ("and", "or") and isinstance(args, list):
                    clauses += max(0, len(args) - 1)
            stack.extend((child, depth + 1, ops) for child in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth + 1, ops) for child in node)
        if clauses > MAX_FILTER_CLAUSES:
            raise InvalidQueryError(
                f"the CQL2-JSON filter has more than {MAX_FILTER_CLAUSES} AND/OR clauses"
                + CLAUSE_ADVICE
            )


__all__ = [
    "CLAUSE_ADVICE",
    "DEPTH_ADVICE",
    "MAX_FILTER_CLAUSES",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "check_filter_size",
    "check_json_size",
    "text_shape",
]
