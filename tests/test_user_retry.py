"""A retry policy the user passes to ``ag.open(retry=...)`` governs, and a cancel still cuts it.

The package's own policies wait between attempts on the thread's watch
(:class:`~pystac_axelglobe._retry.WatchedRetry`), so a page fetched ahead for a search that
was broken off stops waiting at once. A user's plain urllib3 ``Retry`` would ``time.sleep``
its whole backoff or ``Retry-After`` instead: ``ag.open`` uses a watched copy of it, with the
user's fields, and leaves the user's object as it was (a subclass of the user's is used as
it is); that a cancel cuts it short is tested in ``test_backoff_cancel``. Against the
:class:`~tests.test_backoff_cancel.Busy` server on 127.0.0.1 (503 with ``Retry-After``,
every request counted). A number of retries is read as requests reads ``max_retries=n``;
anything else is refused before a request is sent.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pystac_client
import pytest
from urllib3.util.retry import Retry

import pystac_axelglobe as ag
from pystac_axelglobe._retry import WatchedRetry, search_retry, watched
from pystac_axelglobe._stac_io import AxelGlobeStacApiIO
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import APIRequestError, ConfigurationError
from tests.fake_api import FakeAPI
from tests.test_backoff_cancel import Busy


class Mine(Retry):
    """A user's own subclass."""


def _user_policy() -> Retry:
    return Retry(total=3, status_forcelist=[503], respect_retry_after_header=True)


def test_a_users_own_subclass_is_used_as_it_is() -> None:
    # Its overrides are the user's, its sleep too: nothing of it is replaced.
    mine = Mine(total=4, status_forcelist=[503])
    assert watched(mine) is mine
    assert AxelGlobeStacApiIO(retry=mine).retry is mine


# --- the user's policy still governs ----------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_users_counts_and_overrides_decide_the_attempts(
        opened: Callable[..., pystac_client.Client]) -> None:
    waits: list[float | None] = []

    class Capped(Retry):
        """A user's policy that waits at most 0.1 s, whatever the server says."""

        def get_retry_after(self, response: Any) -> float | None:
            wait = super().get_retry_after(response)
            waits.append(wait)
            return None if wait is None else min(wait, 0.1)

    mine = Capped(total=1, status_forcelist=[503], respect_retry_after_header=True)
    with Busy() as server:  # every search page answers 503, Retry-After: 20
        client = opened(server, retry=mine)
        started = time.monotonic()
        with pytest.raises(APIRequestError, match="503"):
            next(client.search().items())
    assert server.count("page 1") == 2, server.asked  # total=1: one retry, then it gives up
    assert waits == [20.0]  # the override ran (once, before the retry)...
    assert time.monotonic() - started < 15  # ...and its 0.1 s was waited, not the 20 s


@pytest.mark.timeout(60)
def test_the_users_policy_retries_a_busy_page_after_its_retry_after(
        opened: Callable[..., pystac_client.Client]) -> None:
    mine = _user_policy()
    with Busy(busy=1, retry_after="1", last=2) as server:
        ids = [item.id for item in opened(server, retry=mine).search().items()]
    assert ids == ["item-10", "item-11", "item-20", "item-21"]
    for page in ("page 1", "page 2"):
        first, second = server.times(page)
        assert second - first >= 0.9, server.asked


# --- the user's object is left as it was ------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_users_retry_object_is_not_modified(
        opened: Callable[..., pystac_client.Client]) -> None:
    mine = _user_policy()
    before = dict(vars(mine))
    with Busy(busy=1, retry_after="1", last=2) as server:
        items = list(opened(server, retry=mine).search().items())
    assert len(items) == 4 and server.count("page 1") == 2  # retried under it
    assert type(mine) is Retry
    assert vars(mine) == before and mine.history == ()


def test_the_packages_own_policies_are_taken_as_they_are() -> None:
    own = search_retry()
    assert watched(own) is own


# --- a number of retries, as requests and pystac-client read it -------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retries", [0, 2])
def test_a_number_of_retries_retries_a_busy_page_that_many_times(
        opened: Callable[..., pystac_client.Client], retries: int) -> None:
    with Busy(retry_after="0") as server:  # every search page answers 503, Retry-After: 0
        client = opened(server, retry=retries)
        with pytest.raises(APIRequestError, match="503"):
            next(client.search().items())
    assert server.count("page 1") == retries + 1, server.asked


def test_a_number_of_retries_retries_no_body_cut_mid_way(tmp_path: Path) -> None:
    # requests' max_retries=n retries no reads; the cut is reported in the package's words
    # (it was an AttributeError: an int has no increment()).
    with Emulator(api_fault_rate=0.0, fault_kinds=("drop",)) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path, retry=3)
        emu.api_fault_rate = 1.0
        emu.reset_counters()
        with pytest.raises(APIRequestError, match="dropped mid-response .* retries no reads"):
            next(client.search(collections="grus-1").items())
        assert emu.counters.search_requests == 1


@pytest.mark.parametrize("bad", ["3", 2.5, -1, True, object()])
def test_a_retry_neither_a_policy_nor_a_count_is_refused_before_anything_is_sent(
        opened: Callable[..., pystac_client.Client], bad: object) -> None:
    with FakeAPI() as server:
        with pytest.raises(ConfigurationError, match=r"retry= takes a urllib3 Retry or a "
                                                     r"number of retries \(0 or more\)"):
            opened(server, retry=bad)
    assert not server.hits


def test_the_watched_copy_keeps_every_field_and_its_class_through_new_and_pickle() -> None:
    plain = Retry(total=4, status_forcelist=[503], backoff_factor=0.5, raise_on_status=False)
    copy = watched(plain)
    assert type(copy) is WatchedRetry and type(plain) is Retry
    assert copy is not plain and vars(copy) == vars(plain)
    spent = copy.increment("GET", "/search", error=ConnectionError("dropped"))
    assert type(spent) is WatchedRetry and spent.total == 3
    back = pickle.loads(pickle.dumps(copy))
    assert type(back) is WatchedRetry and vars(back) == vars(plain)
