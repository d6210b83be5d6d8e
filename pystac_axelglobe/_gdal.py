"""GDAL settings for reads from presigned storage URLs: enforced, bounded, credential-free.

:func:`pystac_axelglobe.load` reads pixels with GDAL (through rasterio and odc-loader). Three
kinds of GDAL configuration options matter for it, each handled here:

- :data:`GDAL_OPTIONS`, always set: presigned storage refuses ``HEAD`` and any request with
  an ``Authorization`` header, and GDAL must not look for side-car files;
- :data:`READ_BOUNDS`, defaults a user may change (``rasterio.Env(...)`` around ``load()``,
  ``odc.stac.configure_rio(...)`` or the ``GDAL_HTTP_*`` environment variables): no read
  waits forever for a silent or trickling storage server;
- credentials: options that add an ``Authorization``/``Cookie`` header or HTTP auth
  (``GDAL_HTTP_HEADERS``, ``GDAL_HTTP_HEADER_FILE``, ``GDAL_HTTP_USERPWD``, ``GDAL_HTTP_AUTH``
  with ``GDAL_HTTP_BEARER``, ``GDAL_HTTP_COOKIE``, ``GDAL_HTTP_COOKIEFILE``) are never
  captured into a dask graph and are cancelled in the thread that reads
  (:func:`credential_overrides`), wherever they come from: the process environment, an
  enclosing ``rasterio.Env`` (which GDAL sees in every thread when entered in the main
  thread), or a dask worker's own environment. GDAL reads a config option from the thread,
  then the process, then ``os.environ``; an option set in the reading thread wins over all.

Example:
    >>> GDAL_OPTIONS["CPL_VSIL_CURL_USE_HEAD"]
    'NO'
    >>> is_timeout("CURL error: Operation too slow. Less than 1024 bytes/sec transferred")
    True
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: GDAL settings for every read from storage, whatever the user configured. The presigned
#: URL authorises one GET; storage refuses HEAD (403) and any request with an
#: ``Authorization`` header (400). Without ``CPL_VSIL_CURL_USE_HEAD=NO`` GDAL starts with a
#: HEAD and, on its retry, may re-send credentials; ``EMPTY_DIR`` stops it probing for
#: side-car files (``.aux.xml``, ``.ovr``), each a refused request; merging ranges saves
#: round trips; ``GDAL_HTTP_NETRC=NO`` keeps a user's ``~/.netrc`` from adding Basic auth.
#:
#: Requests per asset: with HEAD refused, GDAL learns the file size from a ``GET`` of the
#: whole file that it cuts off after the headers (one per URL and process; nothing avoids
#: it short of HEAD), then reads byte ranges. ``GDAL_INGESTED_BYTES_AT_OPEN`` makes its
#: first range 64 KiB: the COG header and, for small files, all of it (one range instead of
#: two). ``CPL_VSIL_CURL_HONOR_CACHE_CONTROL=NO``: a ``Cache-Control: no-cache`` from
#: storage would make GDAL forget the file size between its stat and its open (a second
#: whole-file GET) and re-download everything on every chunk read; the object behind a
#: presigned URL never changes, so GDAL's per-process cache (keyed by that URL, 16 MB by
#: default) is safe to use.
GDAL_OPTIONS: dict[str, str] = {
    "CPL_VSIL_CURL_HONOR_CACHE_CONTROL": "NO",
    "CPL_VSIL_CURL_USE_HEAD": "NO",
    "GDAL_INGESTED_BYTES_AT_OPEN": "65536",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_NETRC": "NO",
    "VSI_CACHE": "TRUE",
}

#: Bounds on every storage request GDAL sends, unless the user sets other (valid) values.
#: A server that sends less than ``GDAL_HTTP_LOW_SPEED_LIMIT`` bytes/s for
#: ``GDAL_HTTP_LOW_SPEED_TIME`` seconds (silent, or trickling a byte now and then) fails the
#: read after 10 s; GDAL does not retry that, nor does :func:`~pystac_axelglobe.load` (a fresh
#: URL would wait as long). A connection that does not open in ``GDAL_HTTP_CONNECTTIMEOUT``
#: seconds, or a request that takes more than ``GDAL_HTTP_TIMEOUT`` seconds in all, is
#: retried by GDAL ``GDAL_HTTP_MAX_RETRY`` times (as are 429 and 5xx answers), with a delay
#: starting at ``GDAL_HTTP_RETRY_DELAY`` seconds and about doubling: at most
#: 4 x 60 s + ~5 s per request for a server that trickles just fast enough.
READ_BOUNDS: dict[str, str] = {
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_LOW_SPEED_TIME": "10",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1024",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
}

# The range a user's value must fall in to replace the default. curl reads 0 as "no
# limit": a bound of 0 would let a read hang, so it is refused like garbage.
_BOUND_RANGES: dict[str, tuple[float, float]] = {
    "GDAL_HTTP_CONNECTTIMEOUT": (0.001, 3600.0),
    "GDAL_HTTP_TIMEOUT": (0.001, 86400.0),
    "GDAL_HTTP_LOW_SPEED_TIME": (1.0, 3600.0),
    "GDAL_HTTP_LOW_SPEED_LIMIT": (1.0, 1e9),
    "GDAL_HTTP_MAX_RETRY": (0.0, 10.0),
    "GDAL_HTTP_RETRY_DELAY": (0.0, 60.0),
}
# curl takes these two as whole numbers (GDAL parses them with atoi).
_WHOLE = frozenset({"GDAL_HTTP_LOW_SPEED_TIME", "GDAL_HTTP_LOW_SPEED_LIMIT",
                    "GDAL_HTTP_MAX_RETRY"})

#: The value that cancels each option that would attach credentials to a storage request.
#: An empty header list, an empty header file, an empty cookie file, no bearer token, and
#: no user name: with ``ANYSAFE`` curl sends no ``Authorization`` at all unless a server
#: asks for it with a 401 (S3-style storage never does), and then never Basic.
_NEUTRAL: dict[str, str] = {
    "GDAL_HTTP_HEADERS": "",
    "GDAL_HTTP_HEADER_FILE": os.devnull,
    "GDAL_HTTP_USERPWD": "",
    "GDAL_HTTP_BEARER": "",
    "GDAL_HTTP_COOKIE": "",
    "GDAL_HTTP_COOKIEFILE": os.devnull,
}
_AUTH = "GDAL_HTTP_AUTH"
_AUTH_NEUTRAL = "ANYSAFE"

#: Options never captured into a dask graph or handed to GDAL for storage reads: the
#: credential options above, and the S3 credentials a ``rasterio.Env``/``configure_rio``
#: may hold (a presigned URL needs none, and a graph is no place for a secret).
CREDENTIAL_OPTIONS: frozenset[str] = frozenset({
    *_NEUTRAL, _AUTH, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "_aws",
})

# What GDAL's error says when curl gave up waiting (connect, total or low-speed bound).
_TIMEOUT_MARKERS = ("timed out", "too slow", "timeout was reached")


def _bound(name: str, value: Any) -> str | None:
    """``value`` as a GDAL string if it is a usable bound for option ``name``, else None."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    low, high = _BOUND_RANGES[name]
    if not math.isfinite(number) or not low <= number <= high:
        return None
    if name in _WHOLE:
        return str(int(number))
    return f"{number:g}"


def read_bounds(user: Mapping[str, Any]) -> dict[str, str]:
    """:data:`READ_BOUNDS` with the user's valid values (``user``, then ``os.environ``).

    A value that is not a number in a sensible range (``0`` means "no limit" to curl) is
    replaced by the default, with a warning.

    Example:
        >>> read_bounds({"GDAL_HTTP_TIMEOUT": "5"})["GDAL_HTTP_TIMEOUT"]
        '5'
        >>> read_bounds({"GDAL_HTTP_TIMEOUT": "0"})["GDAL_HTTP_TIMEOUT"]
        '60'
    """
    out = dict(READ_BOUNDS)
    for name, default in READ_BOUNDS.items():
        given = user.get(name, os.environ.get(name))
        if given is None:
            continue
        value = _bound(name, given)
        if value is None:
            low, high = _BOUND_RANGES[name]
            log.warning("ignoring %s=%r for storage reads: not a number from %g to %g; "
                        "using %s", name, given, low, high, default)
            continue
        out[name] = value
    return out


def reading_env(captured: Mapping[str, Any]) -> dict[str, Any]:
    """The GDAL options a storage read runs with, from those captured when ``load()`` ran.

    The captured options (an enclosing ``rasterio.Env``, ``configure_rio``) lose every
    credential, the read bounds get their defaults where unset, and :data:`GDAL_OPTIONS`
    go on top.

    Example:
        >>> env = reading_env({"GDAL_HTTP_HEADERS": "Authorization: Bearer x"})
        >>> "GDAL_HTTP_HEADERS" in env, env["GDAL_HTTP_TIMEOUT"]
        (False, '60')
    """
    env = {k: v for k, v in captured.items() if k not in CREDENTIAL_OPTIONS}
    env.update(read_bounds(env))
    env.update(GDAL_OPTIONS)
    return env


def credential_overrides() -> dict[str, str]:
    """Options that cancel, in the calling thread, every credential option GDAL would use.

    Run in the thread that is about to read: GDAL would take an option from this thread's
    settings, then the process-wide ones (a ``rasterio.Env`` entered in the main thread),
    then ``os.environ`` (of this process: a dask worker has its own). Only options that
    are set get overridden, so that a read without them is unchanged.

    Example:
        >>> import rasterio
        >>> with rasterio.Env(GDAL_HTTP_USERPWD="user:password"):
        ...     credential_overrides()
        {'GDAL_HTTP_USERPWD': '', 'GDAL_HTTP_AUTH': 'ANYSAFE'}
    """
    from rasterio.env import get_gdal_config

    out = {name: value for name, value in _NEUTRAL.items()
           if get_gdal_config(name, normalize=False) is not None}
    if out.keys() & {"GDAL_HTTP_USERPWD", "GDAL_HTTP_BEARER"} or get_gdal_config(
            _AUTH, normalize=False) is not None:
        out[_AUTH] = _AUTH_NEUTRAL
    return out


def is_timeout(message: str) -> bool:
    """Whether a GDAL read error says that storage did not answer within the bounds.

    Example:
        >>> is_timeout("HTTP response code: 403")
        False
    """
    text = message.lower()
    return any(marker in text for marker in _TIMEOUT_MARKERS)


def slow_hint(seconds: float) -> str:
    """A hint for a failed read that took as long as a bound allows: storage was slow.

    GDAL reports a range that stalled only in its debug log, then fails on the short data
    ("not recognized as being in a supported file format"): the time spent is the clue.

    Example:
        >>> slow_hint(0.2)
        ''
    """
    from rasterio.env import get_gdal_config

    limits = []
    for name in ("GDAL_HTTP_LOW_SPEED_TIME", "GDAL_HTTP_TIMEOUT"):
        configured = _bound(name, get_gdal_config(name, normalize=False))
        limits.append(float(configured or READ_BOUNDS[name]))
    if seconds < min(limits):
        return ""
    return (f" (after {seconds:.0f} s: storage may be too slow; the bounds: "
            f"{describe_bounds()})")


def describe_bounds() -> str:
    """The read bounds in force in this thread, in words, for error messages.

    Example:
        >>> describe_bounds()
        'under 1024 bytes/s for 10 s, 60 s per request, 10 s to connect, 3 retries'
    """
    from rasterio.env import get_gdal_config

    b = dict(READ_BOUNDS)
    for name in READ_BOUNDS:
        value = get_gdal_config(name, normalize=False)
        if value is not None:
            b[name] = str(value)
    return (f"under {b['GDAL_HTTP_LOW_SPEED_LIMIT']} bytes/s for "
            f"{b['GDAL_HTTP_LOW_SPEED_TIME']} s, {b['GDAL_HTTP_TIMEOUT']} s per request, "
            f"{b['GDAL_HTTP_CONNECTTIMEOUT']} s to connect, {b['GDAL_HTTP_MAX_RETRY']} retries")
