"""When an access token is renewed, without a provider: a quarter of its lifetime ahead, at most 60 s (plus the
claims' one-second resolution) before it expires, after a 401 only if the refused token is still the current one."""

from __future__ import annotations

from types import SimpleNamespace

import jwt
import pytest

from dlt_stac.auth import authorizers
from dlt_stac.auth.authorizers import RenewingToken
from dlt_stac.auth.oidc import Tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(authorizers, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def grant_of(lifetime_s: int) -> tuple[RenewingToken, list[str]]:
    """A renewing token whose grant issues JWTs valid for `lifetime_s`, and the tokens it issued."""
    issued: list[str] = []

    def grant() -> Tokens:
        issued.append(jwt.encode({"iat": 0, "exp": lifetime_s, "n": len(issued)}, "k" * 32, algorithm="HS256"))
        return Tokens(issued[-1], None, None)

    return RenewingToken(grant), issued


@pytest.mark.parametrize(("lifetime_s", "renewed_after_s"), [(300, 300 - 60 - 1), (120, 120 - 30 - 1)])
def test_a_token_is_renewed_ahead_of_its_expiry(clock: Clock, lifetime_s: int, renewed_after_s: float) -> None:
    token, issued = grant_of(lifetime_s)
    first = token.bearer_token()

    clock.now += renewed_after_s - 0.5
    assert token.bearer_token() == first and len(issued) == 1
    clock.now += 0.5
    assert token.bearer_token() == issued[1] != first and len(issued) == 2


def test_a_401_renews_once_however_many_requests_saw_it(clock: Clock) -> None:
    token, issued = grant_of(300)
    refused = token.bearer_token()

    renewed = [token.renewed_after_refusal(refused) for _ in range(3)]

    assert renewed == [issued[1]] * 3 and len(issued) == 2
