"""Client-side validation of filters: what AxelGlobe can evaluate, as the text it is sent.

:func:`validate_filter` takes CQL2 text or CQL2-JSON (a dict or JSON text), bounds it before
cql2 parses it (:mod:`._filter_limits`), refuses operators and geometries AxelGlobe does not
evaluate, and property names its items do not carry (:mod:`.queryables`), each with an error
that says what to write instead; then returns the CQL2 text to send.

Example:
    >>> validate_filter("S_INTERSECTS(geometry, POINT (1 2))")
    'S_INTERSECTS(geometry, POINT (1 2))'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._filter_limits import (
    DEPTH_ADVICE,
    MAX_FILTER_LENGTH,
    check_filter_size,
    check_json_size,
)
from ._geometry import geometry_collection_message
from .errors import InvalidQueryError
from .queryables import check_properties

# Operators of CQL2 that AxelGlobe evaluates. Anything else (other spatial, temporal or
# array operators, custom functions) is refused here rather than by a 400 from the server.
_LOGICAL = {"and", "or", "not"}
_COMPARISON = {"=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isnull"}
_AVG_ARGS = [{"property": "eo:cloud_cover"}]
_HELP = (
    "AxelGlobe supports comparisons, AND/OR/NOT, avg(eo:cloud_cover) and "
    "S_INTERSECTS(geometry, <POINT|LINESTRING|MULTIPOINT|MULTILINESTRING|POLYGON|"
    "MULTIPOLYGON|BBOX(...)>)"
)
_SPATIAL_FN = re.compile(r"'(?:[^']|'')*'|\bs_intersects\b", re.IGNORECASE)


def validate_filter(filter: str | Mapping[str, Any], filter_lang: str | None = None) -> str:  # noqa: A002
    """Check a filter client-side and return it as CQL2 text for AxelGlobe.

    Args:
        filter: CQL2 text, CQL2-JSON (dict or JSON text).
        filter_lang: ``"cql2-text"``, ``"cql2-json"`` or None (guessed from ``filter``).

    Returns:
        The CQL2 text to send (text input is sent as written, once it parses).

    Raises:
        InvalidQueryError: syntax errors, GEOMETRYCOLLECTION, ENVELOPE, spatial operators
            other than S_INTERSECTS, functions other than avg(eo:cloud_cover), a filter
            beyond :data:`MAX_FILTER_LENGTH`, :data:`MAX_FILTER_DEPTH` or
            :data:`MAX_FILTER_CLAUSES`.

    Example:
        >>> validate_filter({"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]})
        'eo:cloud_cover <= 30'
        >>> validate_filter("eo:cloud_cover <= 30 AND avg(eo:cloud_cover) <= 20")
        'eo:cloud_cover <= 30 AND avg(eo:cloud_cover) <= 20'
    """
    import cql2

    if filter_lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidQueryError(
            f"filter-lang {filter_lang!r} is not supported; use 'cql2-text' or 'cql2-json'"
        )
    text: str | None = None
    try:
        if isinstance(filter, Mapping):
            check_json_size(filter)  # before cql2, whose conversion recurses
            expr = cql2.Expr(dict(filter))
        elif isinstance(filter, str):
            stripped = filter.strip()
            if not stripped:
                raise InvalidQueryError("the filter is empty; pass CQL2 text or leave it out")
            if filter_lang == "cql2-json" or stripped.startswith("{"):
                expr = cql2.Expr(_load_json_filter(stripped))
            else:
                check_filter_size(stripped)  # before cql2, whose parser recurses
                expr = cql2.parse_text(stripped)
                text = stripped
        else:
            raise InvalidQueryError(
                f"filter must be CQL2 text or a CQL2-JSON dict, got {type(filter).__name__}"
            )
        tree = expr.to_json()
    except InvalidQueryError:
        raise
    except Exception as err:
        raise InvalidQueryError(
            f"the filter is not valid CQL2: {str(err).strip()}\n"
            "Example of a valid filter: eo:cloud_cover <= 30 AND "
            "S_INTERSECTS(geometry, POINT(-50.38 -21.5))"
        ) from err
    _walk(tree)
    check_properties(tree)  # a typo'd property would find nothing, silently
    if text is None:
        text = _spatial_upper(str(expr.to_text()))
    return text


def _load_json_filter(text: str) -> Any:
    if len(text) > MAX_FILTER_LENGTH:
        check_filter_size(text)  # the same length message
    try:
        tree = json.loads(text)
    except RecursionError as err:
        raise InvalidQueryError("the CQL2-JSON filter nests too deeply" + DEPTH_ADVICE) from err
    except ValueError as err:
        if text.startswith("{"):
            raise
        raise InvalidQueryError(
            f"filter_lang='cql2-json' but the filter is not CQL2-JSON: "
            f"{text!r:.80}; drop filter_lang (or pass 'cql2-text') for CQL2 "
            "text, or pass the filter as a CQL2-JSON dict"
        ) from err
    check_json_size(tree)
    return tree


def _walk(node: Any) -> None:
    """Refuse what AxelGlobe cannot evaluate, with a message saying what it can."""
    if isinstance(node, list):
        for child in node:
            _walk(child)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "GeometryCollection":
        raise InvalidQueryError(geometry_collection_message())
    if "op" not in node:
        for child in node.values():
            _walk(child)
        return
    args = node.get("args") or []
    _check_operator(str(node["op"]).lower(), args)
    _walk(args)


def _check_operator(op: str, args: Any) -> None:
    """Refuse operator ``op`` (lower case) with ``args`` if AxelGlobe does not evaluate it."""
    check = _OPERATOR_CHECKS.get(op)
    if check is not None:
        check(args)
    elif op.startswith("s_"):
        raise InvalidQueryError(
            f"AxelGlobe does not support the spatial operator {op.upper()}; only "
            "S_INTERSECTS. " + _HELP
        )
    elif op not in _LOGICAL and op not in _COMPARISON:
        raise InvalidQueryError(f"AxelGlobe does not support {op}(...) in filters. {_HELP}")


def _refuse_envelope(args: Any) -> None:
    raise InvalidQueryError(
        "AxelGlobe does not support ENVELOPE in S_INTERSECTS; write the same box as "
        "BBOX(minx, miny, maxx, maxy)"
    )


def _check_avg(args: Any) -> None:
    # avg() averages over a capture's tiles; AxelGlobe defines it for cloud cover only.
    if args != _AVG_ARGS:
        raise InvalidQueryError(
            f"avg() is supported only as avg(eo:cloud_cover), got avg({args!r:.80})"
        )


def _check_s_intersects(args: Any) -> None:
    if not args or args[0] != {"property": "geometry"}:
        raise InvalidQueryError(
            "S_INTERSECTS must test the 'geometry' queryable: "
            "S_INTERSECTS(geometry, <geometry>)"
        )


# The operators with a rule of their own; other s_* operators are refused, and the rest
# must be logical or comparison operators.
_OPERATOR_CHECKS: dict[str, Callable[[Any], None]] = {
    "envelope": _refuse_envelope,
    "avg": _check_avg,
    "s_intersects": _check_s_intersects,
}


def _spatial_upper(text: str) -> str:
    # cql2 prints s_intersects in lower case; the provider's guide writes S_INTERSECTS. Upper
    # -case it outside string literals so we send the documented spelling.
    return _SPATIAL_FN.sub(lambda m: m.group(0) if m.group(0).startswith("'") else "S_INTERSECTS",
                           text)


__all__ = ["validate_filter"]
