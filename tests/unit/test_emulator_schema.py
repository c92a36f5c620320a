"""The Salesforce emulator's field lookup (an index, not a scan per field of each record)."""

from __future__ import annotations

import dataclasses

from emulators.sf_config import SalesforceEmulatorConfig
from emulators.sf_schema import task_object


def test_fields_are_found_by_name_in_any_case() -> None:
    task = task_object(SalesforceEmulatorConfig())
    assert task.field("Subject") is task.field("subject") is task.field("SUBJECT")
    assert task.field("Subject") is not None and task.field("Subject").name == "Subject"
    assert task.field("NoSuchField__c") is None
    for fdef in task.fields:
        assert task.field(fdef.name) is fdef


def test_a_copy_with_other_fields_finds_its_own() -> None:
    task = task_object(SalesforceEmulatorConfig())
    fewer = dataclasses.replace(task, fields=task.fields[:3])
    assert fewer.field(task.fields[0].name) is task.fields[0]
    assert fewer.field(task.fields[5].name) is None
