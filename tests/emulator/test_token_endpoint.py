"""The emulator's token endpoint and what its tokens do at the API (real HTTP on loopback)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from pystac_axelglobe.emulator import Emulator


def ask(emu: Emulator, **overrides: Any) -> requests.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "audience": emu.audience,
    }
    body.update(overrides)
    return requests.post(emu.token_url, json=body, timeout=10)


def landing(emu: Emulator, token: str) -> requests.Response:
    return requests.get(emu.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_token_ok_and_usable(emulator: Emulator) -> None:
    r = ask(emulator)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    assert landing(emulator, body["access_token"]).status_code == 200


def test_tokens_are_distinct_opaque_strings(emulator: Emulator) -> None:
    a, b = ask(emulator).json()["access_token"], ask(emulator).json()["access_token"]
    assert a != b and len(a) >= 32 and emulator.client_secret not in a


def test_bad_secret(emulator: Emulator) -> None:
    r = ask(emulator, client_secret="wrong")
    assert r.status_code == 401
    assert r.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_unknown_client(emulator: Emulator) -> None:
    r = ask(emulator, client_id="nobody")
    assert r.status_code == 401 and r.json()["error"] == "access_denied"


def test_bad_audience(emulator: Emulator) -> None:
    r = ask(emulator, audience="https://api.example.com")
    assert r.status_code == 401
    assert r.json() == {
        "error": "access_denied",
        "error_description": "Service not found: https://api.example.com",
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"grant_type": "password"}, "grant_type must be client_credentials"),
        ({"client_secret": None}, "Missing required parameter: client_secret"),
        ({"audience": None}, "Missing required parameter: audience"),
    ],
)
def test_bad_body(emulator: Emulator, body: dict[str, Any], words: str) -> None:
    r = ask(emulator, **body)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_request", "error_description": words}


def test_non_json_body(emulator: Emulator) -> None:
    r = requests.post(
        emulator.token_url,
        data="grant_type=client_credentials",
        timeout=10,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_get_is_refused(emulator: Emulator) -> None:
    assert requests.get(emulator.token_url, timeout=10).status_code == 405


def test_extra_clients() -> None:
    with Emulator(clients={"other": "other-secret"}) as emu:
        r = ask(emu, client_id="other", client_secret="other-secret")
        assert r.status_code == 200
        assert landing(emu, r.json()["access_token"]).status_code == 200
        assert ask(emu, client_id="other", client_secret=emu.client_secret).status_code == 401


def test_no_token_is_401(emulator: Emulator) -> None:
    r = requests.get(emulator.api_url, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["code"] == "Unauthorized"


def test_unknown_token_is_401_invalid_token(emulator: Emulator) -> None:
    r = landing(emulator, "not-a-token")
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_expires_in_is_honoured() -> None:
    with Emulator(token_lifetime=1) as emu:
        body = ask(emu).json()
        assert body["expires_in"] == 1
        assert landing(emu, body["access_token"]).status_code == 200
        time.sleep(1.2)
        r = landing(emu, body["access_token"])
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_revoke_tokens() -> None:
    with Emulator() as emu:
        old = ask(emu).json()["access_token"]
        emu.revoke_tokens()
        assert landing(emu, old).status_code == 401
        assert landing(emu, ask(emu).json()["access_token"]).status_code == 200


def test_reject_tokens_refuses_old_and_new_tokens_until_switched_off() -> None:
    with Emulator(reject_tokens=True) as emu:
        first = ask(emu)
        assert first.status_code == 200  # the token endpoint still issues them
        assert landing(emu, first.json()["access_token"]).status_code == 401
        emu.reject_tokens = False
        assert landing(emu, first.json()["access_token"]).status_code == 200


def test_restriction_and_its_end() -> None:
    with Emulator(restrict_after=3, restrict_window=60, restrict_period=2) as emu:
        tokens = [ask(emu) for _ in range(3)]
        assert [r.status_code for r in tokens] == [200, 200, 200]
        good = tokens[0].json()["access_token"]
        fourth = ask(emu)
        assert fourth.status_code == 429
        assert 1 <= int(fourth.headers["Retry-After"]) <= 2
        assert "restricted" in fourth.json()["description"]
        # the API refuses every token of the restricted client, valid or not
        api = landing(emu, good)
        assert api.status_code == 429 and int(api.headers["Retry-After"]) >= 1
        assert ask(emu).status_code == 429
        assert emu.counters.token_requests == 5  # refused ones are counted too
        time.sleep(2.1)
        assert landing(emu, good).status_code == 200
        assert ask(emu).status_code == 200


def test_restriction_is_per_client() -> None:
    with Emulator(restrict_after=1, clients={"b": "b-secret"}) as emu:
        assert ask(emu).status_code == 200
        assert ask(emu).status_code == 429
        assert ask(emu, client_id="b", client_secret="b-secret").status_code == 200


def test_secret_not_in_repr() -> None:
    emu = Emulator()
    assert emu.client_secret not in repr(emu)
