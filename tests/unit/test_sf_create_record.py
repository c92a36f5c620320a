"""The record a Salesforce create sends, as `SalesforceSide` builds it from a canonical task
(the client is a stand-in that records what it is given: the side is what is tested)."""

from __future__ import annotations

from typing import Any

from sync.model import Task
from sync.sides import SalesforceSide


async def test_a_create_keeps_the_picklist_default_for_a_status_the_org_cannot_hold() -> None:
    """The record a create sends: typed, a status or priority with no value in the org left to
    the picklist default (and noted), a cleared due date sent as null, no other empty field."""
    from sync.connectors.salesforce import RecordResult
    from sync.mapping import Note

    sent: list[dict[str, Any]] = []

    class Recording:
        async def create(self, records: list[dict[str, Any]]) -> list[RecordResult]:
            sent.extend(records)
            return [RecordResult(id=f"00T{n:015d}", success=True) for n in range(len(records))]

    side = SalesforceSide(Recording())  # type: ignore[arg-type]
    side.user_id = "005000000000001AAA"
    task = Task(name="Call Jane", status=None, priority="high", due_date=None, details="")
    [result] = await side.create([("key-1", task)])
    assert result.ok and result.notes == {"status": Note.UNMAPPED}
    assert sent == [
        {
            "attributes": {"type": "Task"},
            "Status": "Not Started",  # the picklist default, not left out or null
            "Priority": "High",
            "Subject": "Call Jane",
            "Description": "",
            "ActivityDate": None,
            "OwnerId": "005000000000001AAA",
        }
    ]
