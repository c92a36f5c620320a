"""Configuration of the Salesforce emulator: the org, its user, its connected app."""

from __future__ import annotations

from dataclasses import dataclass

from emulators.sf_ids import make_id

LATEST_API_VERSION = "62.0"
# Salesforce serves every version from 31.0 up; clients pin one of them.
API_VERSIONS: tuple[str, ...] = tuple(f"{v}.0" for v in range(31, 63))


@dataclass(frozen=True)
class StatusValue:
    """One TaskStatus picklist entry; ``is_closed`` drives Task.IsClosed."""

    label: str
    is_closed: bool = False
    is_default: bool = False


@dataclass(frozen=True)
class PriorityValue:
    """One TaskPriority picklist entry; ``is_high`` drives Task.IsHighPriority."""

    label: str
    is_high: bool = False
    is_default: bool = False


DEFAULT_STATUSES: tuple[StatusValue, ...] = (
    StatusValue("Not Started", is_default=True),
    StatusValue("In Progress"),
    StatusValue("Completed", is_closed=True),
    StatusValue("Waiting on someone else"),
    StatusValue("Deferred"),
)
DEFAULT_PRIORITIES: tuple[PriorityValue, ...] = (
    PriorityValue("High", is_high=True),
    PriorityValue("Normal", is_default=True),
    PriorityValue("Low"),
)


@dataclass(frozen=True)
class SalesforceEmulatorConfig:
    """Everything about the emulated org that a test may want to vary.

    The connected app accepts ``client_id`` (+ ``client_secret`` where a grant needs it).
    ``jwt_public_key_pem`` enables the JWT bearer grant (RS256 assertions signed with the
    matching private key, ``iss`` = client_id, ``sub`` = username).
    ``external_id_field`` is a custom Text(255) External ID field on Task; None = absent.
    """

    client_id: str = "reminder-sync-emulator"
    client_secret: str = "emulator-client-secret"
    username: str = "rep@reminder-sync.example"
    password: str = "emulator-password"
    user_id: str = make_id("005", 1)
    user_full_name: str = "Riley Rep"
    user_email: str = "rep@reminder-sync.example"
    user_time_zone: str = "America/Los_Angeles"
    org_id: str = make_id("00D", 1)
    other_users: tuple[tuple[str, str], ...] = ((make_id("005", 2), "Casey Colleague"),)
    api_versions: tuple[str, ...] = API_VERSIONS
    access_token_lifetime_seconds: int = 7200
    rotate_refresh_tokens: bool = False
    require_pkce: bool = True
    jwt_public_key_pem: str | None = None
    daily_api_limit: int = 15000
    page_size: int = 2000
    query_cursor_idle_seconds: int = 900
    external_id_field: str | None = "ReminderSync_Key__c"
    task_statuses: tuple[StatusValue, ...] = DEFAULT_STATUSES
    task_priorities: tuple[PriorityValue, ...] = DEFAULT_PRIORITIES

    @property
    def latest_version(self) -> str:
        return max(self.api_versions, key=lambda v: float(v))


def default_config() -> SalesforceEmulatorConfig:
    """The configuration ``reminder-sync emulators`` and ``demo`` serve (documented credentials)."""
    return SalesforceEmulatorConfig()
