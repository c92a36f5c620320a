"""The emulator's `Date` header is the org's clock: it follows the emulator's shifted clock."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulators.salesforce import SalesforceEmulator

V = "/services/data/v62.0"


@pytest.fixture
def api(
    sf_emulator: SalesforceEmulator, sf_client: Callable[..., httpx.Client]
) -> tuple[httpx.Client, SalesforceEmulator]:
    return sf_client(), sf_emulator


def date_of(response: httpx.Response) -> datetime:
    values = response.headers.get_list("date")
    assert len(values) == 1, f"expected one Date header, got {values}"
    assert values[0].endswith(" GMT"), values[0]
    return email.utils.parsedate_to_datetime(values[0])


def assert_near(said: datetime, emulator_time: datetime) -> None:
    # Whole seconds, rounded down; allow for the time the request took.
    assert emulator_time - timedelta(seconds=5) <= said <= emulator_time, (said, emulator_time)


@pytest.mark.parametrize("offset_hours", [0, 30, -30, -24 * 400])
def test_date_header_follows_the_emulator_clock(api, offset_hours: int) -> None:
    client, emulator = api
    emulator.set_clock_offset(offset_hours * 3600)
    fresh = {"Authorization": f"Bearer {emulator.issue_access_token()}"}  # old one expired
    response = client.get(V + "/query", params={"q": "SELECT Id FROM Task"}, headers=fresh)
    assert response.status_code == 200
    said = date_of(response)
    assert_near(said, emulator.now())
    real = datetime.now(UTC)
    assert abs(said - (real + timedelta(hours=offset_hours))) < timedelta(seconds=10)


def test_date_header_moves_back_when_the_clock_is_set_back(api) -> None:
    client, emulator = api
    emulator.set_clock_offset(2 * 3600)
    ahead = date_of(client.get(V + "/limits"))
    emulator.set_clock_offset(-2 * 3600)
    behind = date_of(client.get(V + "/limits"))
    assert_near(behind, emulator.now())
    assert timedelta(hours=3, minutes=59) < ahead - behind < timedelta(hours=4, minutes=1)


def test_errors_faults_and_oauth_answers_carry_the_emulator_date_too(api) -> None:
    client, emulator = api
    emulator.set_clock_offset(-5 * 3600)
    unauthorized = client.get(V + "/limits", headers={"Authorization": "Bearer nope"})
    assert unauthorized.status_code == 401
    assert_near(date_of(unauthorized), emulator.now())
    token = client.post("/services/oauth2/token", data={"grant_type": "nonsense"})
    assert token.status_code == 400
    assert_near(date_of(token), emulator.now())
    client.post("/__emulator__/faults", json={"kinds": ["503"], "count": 1}).raise_for_status()
    fault = client.get(V + "/limits")
    assert fault.status_code == 503
    assert_near(date_of(fault), emulator.now())
