"""The sObjects the emulator knows (Task, TaskStatus, TaskPriority, User): fields and describe."""

from __future__ import annotations

from dataclasses import dataclass

from emulators.sf_config import SalesforceEmulatorConfig

# Field types, as describe reports them, with their SOAP types.
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "combobox": "xsd:string",
    "picklist": "xsd:string",
    "textarea": "xsd:string",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "int": "xsd:int",
}
TEXT_TYPES = {"id", "reference", "string", "combobox", "picklist", "textarea"}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str
    length: int = 0
    createable: bool = False
    updateable: bool = False
    nillable: bool = True
    defaulted_on_create: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    external_id: bool = False
    restricted_picklist: bool = False


@dataclass(frozen=True)
class SObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    writable: bool = False

    def __post_init__(self) -> None:
        # Lower-cased name -> field (the first of a name wins, as the scan it replaces did):
        # looked up for every field of every record written or read back.
        index: dict[str, FieldDef] = {}
        for candidate in self.fields:
            index.setdefault(candidate.name.lower(), candidate)
        object.__setattr__(self, "_by_name", index)

    def field(self, name: str) -> FieldDef | None:
        """Field lookup, case-insensitive as in Salesforce."""
        return self._by_name.get(name.lower())  # type: ignore[attr-defined]

    @property
    def field_types(self) -> dict[str, str]:
        return {f.name: f.type for f in self.fields}


def _system_fields() -> tuple[FieldDef, ...]:
    system = {"nillable": False, "defaulted_on_create": True}
    user = {"reference_to": ("User",), **system}
    return (
        FieldDef("CreatedDate", "datetime", "Created Date", **system),
        FieldDef("CreatedById", "reference", "Created By ID", 18, relationship_name="CreatedBy",
                 **user),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", **system),
        FieldDef("LastModifiedById", "reference", "Last Modified By ID", 18,
                 relationship_name="LastModifiedBy", **user),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", **system),
    )  # fmt: skip


def task_object(config: SalesforceEmulatorConfig) -> SObjectDef:
    """The standard Task object (the fields a reminder tool and common clients touch)."""
    rw = {"createable": True, "updateable": True}
    fields = [
        FieldDef("Id", "id", "Activity ID", 18, nillable=False, defaulted_on_create=True),
        FieldDef("WhoId", "reference", "Name ID", 18, reference_to=("Contact", "Lead"),
                 relationship_name="Who", **rw),
        FieldDef("WhatId", "reference", "Related To ID", 18, reference_to=("Account",),
                 relationship_name="What", **rw),
        FieldDef("Subject", "combobox", "Subject", 255, **rw),
        FieldDef("ActivityDate", "date", "Due Date Only", **rw),
        FieldDef("Status", "picklist", "Status", 255, nillable=False, defaulted_on_create=True,
                 restricted_picklist=True, **rw),
        FieldDef("Priority", "picklist", "Priority", 40, nillable=False, defaulted_on_create=True,
                 restricted_picklist=True, **rw),
        FieldDef("IsHighPriority", "boolean", "High Priority", nillable=False,
                 defaulted_on_create=True),
        FieldDef("OwnerId", "reference", "Assigned To ID", 18, nillable=False,
                 defaulted_on_create=True, reference_to=("User",), relationship_name="Owner",
                 **rw),
        FieldDef("Description", "textarea", "Description", 32000, **rw),
        FieldDef("IsDeleted", "boolean", "Deleted", nillable=False, defaulted_on_create=True),
        FieldDef("AccountId", "reference", "Account ID", 18, reference_to=("Account",),
                 relationship_name="Account"),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, defaulted_on_create=True),
        *_system_fields(),
        FieldDef("IsArchived", "boolean", "Archived", nillable=False, defaulted_on_create=True),
        FieldDef("ReminderDateTime", "datetime", "Reminder Date/Time", **rw),
        FieldDef("IsReminderSet", "boolean", "Reminder Set", nillable=False,
                 defaulted_on_create=True, **rw),
        FieldDef("RecurrenceActivityId", "reference", "Recurrence Activity ID", 18,
                 reference_to=("Task",)),
        FieldDef("IsRecurrence", "boolean", "Create Recurring Series of Tasks", nillable=False,
                 defaulted_on_create=True, createable=True),
        FieldDef("RecurrenceStartDateOnly", "date", "Recurrence Start", **rw),
        FieldDef("RecurrenceEndDateOnly", "date", "Recurrence End", **rw),
        FieldDef("RecurrenceType", "picklist", "Recurrence Type", 40, restricted_picklist=True,
                 **rw),
        FieldDef("RecurrenceInterval", "int", "Recurrence Interval", **rw),
        FieldDef("TaskSubtype", "picklist", "Task Subtype", 40, restricted_picklist=True,
                 createable=True, defaulted_on_create=True),
        FieldDef("CompletedDateTime", "datetime", "Completed Date/Time"),
    ]  # fmt: skip
    if config.external_id_field:
        fields.append(
            FieldDef(config.external_id_field, "string", "ReminderSync Key", 255,
                     external_id=True, **rw)
        )  # fmt: skip
    return SObjectDef("Task", "Task", "Tasks", "00T", tuple(fields), writable=True)


def picklist_object(name: str, key_prefix: str, flag: str) -> SObjectDef:
    """TaskStatus / TaskPriority: the org's picklist values, queryable read-only."""
    fields = (
        FieldDef("Id", "id", f"{name} ID", 18, nillable=False),
        FieldDef("MasterLabel", "string", "Master Label", 255, nillable=False),
        FieldDef("ApiName", "string", "Api Name", 255, nillable=False),
        FieldDef("SortOrder", "int", "Sort Order"),
        FieldDef(flag, "boolean", flag, nillable=False),
        FieldDef("IsDefault", "boolean", "Is Default", nillable=False),
        *_system_fields(),
    )
    return SObjectDef(name, name, name, key_prefix, fields)


def user_object() -> SObjectDef:
    fields = (
        FieldDef("Id", "id", "User ID", 18, nillable=False),
        FieldDef("Username", "string", "Username", 80, nillable=False),
        FieldDef("Name", "string", "Full Name", 121, nillable=False),
        FieldDef("FirstName", "string", "First Name", 40),
        FieldDef("LastName", "string", "Last Name", 80, nillable=False),
        FieldDef("Email", "string", "Email", 128, nillable=False),
        FieldDef("IsActive", "boolean", "Active", nillable=False),
        FieldDef("TimeZoneSidKey", "picklist", "Time Zone", 40, nillable=False),
        *_system_fields(),
    )
    return SObjectDef("User", "User", "Users", "005", fields)


def all_objects(config: SalesforceEmulatorConfig) -> dict[str, SObjectDef]:
    objects = [
        task_object(config),
        picklist_object("TaskStatus", "01J", "IsClosed"),
        picklist_object("TaskPriority", "01J", "IsHighPriority"),
        user_object(),
    ]
    return {obj.name: obj for obj in objects}


def picklist_values(config: SalesforceEmulatorConfig, field_name: str) -> list[dict]:
    """``picklistValues`` of a field's describe entry."""
    if field_name == "Status":
        entries = [(s.label, s.is_default) for s in config.task_statuses]
    elif field_name == "Priority":
        entries = [(p.label, p.is_default) for p in config.task_priorities]
    elif field_name == "TaskSubtype":
        entries = [(v, v == "Task") for v in ("Task", "Email", "ListEmail", "Cadence", "Call")]
    elif field_name == "RecurrenceType":
        entries = [
            (v, False)
            for v in ("RecursDaily", "RecursEveryWeekday", "RecursMonthly", "RecursWeekly")
        ]
    else:
        return []
    return [
        {"active": True, "defaultValue": default, "label": label, "validFor": None, "value": label}
        for label, default in entries
    ]


def describe_field(config: SalesforceEmulatorConfig, fdef: FieldDef) -> dict:
    text = fdef.type in TEXT_TYPES
    return {
        "aggregatable": fdef.type not in {"textarea"},
        "autoNumber": False,
        "byteLength": fdef.length * 3 if text else 0,
        "calculated": False,
        "caseSensitive": False,
        "createable": fdef.createable,
        "custom": fdef.name.endswith("__c"),
        "defaultValue": None,
        "defaultedOnCreate": fdef.defaulted_on_create,
        "digits": 9 if fdef.type == "int" else 0,
        "externalId": fdef.external_id,
        "filterable": fdef.type != "textarea",
        "groupable": fdef.type not in {"textarea", "datetime"},
        "htmlFormatted": False,
        "idLookup": fdef.type == "id" or fdef.external_id,
        "label": fdef.label,
        "length": fdef.length if text else 0,
        "name": fdef.name,
        "nameField": False,
        "nillable": fdef.nillable,
        "picklistValues": picklist_values(config, fdef.name),
        "precision": 0,
        "referenceTo": list(fdef.reference_to),
        "relationshipName": fdef.relationship_name,
        "restrictedPicklist": fdef.restricted_picklist,
        "scale": 0,
        "soapType": SOAP_TYPES[fdef.type],
        "sortable": fdef.type != "textarea",
        "type": fdef.type,
        "unique": False,
        "updateable": fdef.updateable,
    }


def object_urls(obj: SObjectDef, version: str) -> dict:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
    }


def describe_summary(obj: SObjectDef, version: str) -> dict:
    """One entry of the global describe (``GET sobjects``)."""
    return {
        "activateable": False,
        "createable": obj.writable,
        "custom": False,
        "customSetting": False,
        "deletable": obj.writable,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": obj.writable,
        "mergeable": False,
        "mruEnabled": obj.writable,
        "name": obj.name,
        "queryable": True,
        "replicateable": True,
        "retrieveable": True,
        "searchable": obj.writable,
        "triggerable": obj.writable,
        "undeletable": obj.writable,
        "updateable": obj.writable,
        "urls": object_urls(obj, version),
    }


def describe_object(config: SalesforceEmulatorConfig, obj: SObjectDef, version: str) -> dict:
    """``GET sobjects/{name}/describe``."""
    summary = describe_summary(obj, version)
    return {
        **summary,
        "childRelationships": [],
        "fields": [describe_field(config, f) for f in obj.fields],
        "recordTypeInfos": [
            {
                "active": True,
                "available": True,
                "defaultRecordTypeMapping": True,
                "developerName": "Master",
                "master": True,
                "name": "Master",
                "recordTypeId": "012000000000000AAA",
            }
        ],
    }
