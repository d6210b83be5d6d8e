"""RFC 3339 timestamps on every supported Python.

``datetime.fromisoformat`` reads ``Z`` and any number of fraction digits only from Python
3.11 on; on 3.10 it refuses ``2020-07-23T00:00:00.0123Z``, which STAC clients send.

Example:
    >>> parse_rfc3339("2020-07-23T00:00:00.0123Z").isoformat()
    '2020-07-23T00:00:00.012300+00:00'
"""

from __future__ import annotations

import datetime as dt
import re

_FRACTION = re.compile(r"(?<=:\d\d)\.(\d+)")


def parse_rfc3339(text: str) -> dt.datetime:
    """``datetime.fromisoformat`` with 3.11's leniency: ``Z``, 1 to 9+ fraction digits.

    Raises:
        ValueError: not an ISO 8601 / RFC 3339 date or date-time.
    """
    value = text.strip()
    if value[-1:] in ("z", "Z"):
        value = value[:-1] + "+00:00"
    # microseconds are all Python keeps: pad or cut the fraction to six digits
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    return dt.datetime.fromisoformat(value)
