"""The sandbox org's object model: standard objects callbridge touches, and their describe."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

FieldType = Literal[
    "id",
    "string",
    "textarea",
    "phone",
    "email",
    "url",
    "picklist",
    "combobox",
    "reference",
    "boolean",
    "date",
    "datetime",
    "double",
    "int",
    "currency",
    "percent",
]

TEXT_TYPES = frozenset({"string", "textarea", "phone", "email", "url", "picklist", "combobox"})
NUMBER_TYPES = frozenset({"double", "int", "currency", "percent"})
ID_TYPES = frozenset({"id", "reference"})

_SOAP_TYPES: dict[str, str] = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
}


@dataclass
class FieldDef:
    """One field as describe reports it; ``default`` is applied on create when absent."""

    name: str
    label: str
    type: FieldType
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    external_id: bool = False
    unique: bool = False
    picklist_values: tuple[str, ...] = ()
    default: Any = None
    name_field: bool = False
    calculated: bool = False
    auto_number: bool = False
    id_lookup: bool = False

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def defaulted_on_create(self) -> bool:
        return self.default is not None or self.type in ("id", "boolean") or not self.createable

    @property
    def required_on_create(self) -> bool:
        return not self.nillable and self.createable and not self.defaulted_on_create

    def describe(self) -> dict[str, Any]:
        """The field's entry in ``/sobjects/X/describe`` (keys sorted, as Salesforce does)."""
        text = self.type in TEXT_TYPES
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": self.auto_number,
            "byteLength": self.length * 3 if text else (18 if self.type in ID_TYPES else 0),
            "calculated": self.calculated,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": None,
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": 9 if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.type != "textarea" or self.length <= 255,
            "groupable": self.type not in ("textarea", "double", "currency", "percent"),
            "idLookup": self.id_lookup or self.type == "id" or self.external_id,
            "label": self.label,
            "length": self.length if text else (18 if self.type in ID_TYPES else 0),
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": len(self.reference_to) > 1,
            "nillable": self.nillable,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": value == self.default,
                    "label": value,
                    "validFor": None,
                    "value": value,
                }
                for value in self.picklist_values
            ],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": 18 if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": False,
            "scale": 2 if self.type in ("double", "currency", "percent") else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea" or self.length <= 255,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class SObjectType:
    """One sObject type: its name, key prefix and fields (looked up case-insensitively)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: list[FieldDef]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    searchable: bool = True
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, repr=False)
    _relationships: dict[str, FieldDef] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        self._by_lower = {f.name.lower(): f for f in self.fields}
        self._relationships = {
            f.relationship_name.lower(): f for f in self.fields if f.relationship_name
        }

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def field(self, name: str) -> FieldDef | None:
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind a relationship name (``Account`` for ``AccountId``)."""
        return self._relationships.get(name.lower())

    def add_field(self, definition: FieldDef) -> None:
        existing = self.field(definition.name)
        if existing is not None:
            self.fields[self.fields.index(existing)] = definition
        else:
            self.fields.append(definition)
        self._reindex()

    def remove_field(self, name: str) -> FieldDef | None:
        """Drop a field (as if an admin deleted it or hid it from the API user); the
        removed definition, to add back with :meth:`add_field`."""
        existing = self.field(name)
        if existing is not None:
            self.fields.remove(existing)
            self._reindex()
        return existing

    def url(self, version: str) -> str:
        return f"/services/data/v{version}/sobjects/{self.name}"

    def summary(self, version: str) -> dict[str, Any]:
        """The object's entry in the global describe."""
        base = self.url(version)
        return {
            "activateable": False,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": False,
            "deepCloneable": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in ("Account", "Contact", "Lead", "Case"),
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": self.searchable,
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": self.updateable,
            "urls": {
                "rowTemplate": base + "/{ID}",
                "defaultValues": base + "/defaultValues?recordTypeId&fields",
                "describe": base + "/describe",
                "sobject": base,
            },
        }

    def describe(self, version: str) -> dict[str, Any]:
        """``GET /sobjects/X/describe``."""
        summary = self.summary(version)
        body: dict[str, Any] = {
            "actionOverrides": [],
            "activateable": summary["activateable"],
            "childRelationships": [],
            "compactLayoutable": True,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": False,
            "deepCloneable": False,
            "defaultImplementation": None,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "extendedBy": None,
            "extendsInterfaces": None,
            "feedEnabled": False,
            "fields": [f.describe() for f in self.fields],
            "hasSubtypes": False,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "listviewable": None,
            "lookupLayoutable": None,
            "mergeable": summary["mergeable"],
            "mruEnabled": True,
            "name": self.name,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "queryable": True,
            "recordTypeInfos": [],
            "replicateable": True,
            "retrieveable": True,
            "searchLayoutable": True,
            "searchable": self.searchable,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": "All " + self.label_plural.lower(), "name": "everything"},
                {"label": "My " + self.label_plural.lower(), "name": "mine"},
            ],
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": self.updateable,
            "urls": dict(summary["urls"]),
        }
        body["urls"]["uiDetailTemplate"] = "/{ID}"
        return body


class Schema:
    """All sObject types of the org, by name (case-insensitive) and by key prefix."""

    def __init__(self, types: Iterable[SObjectType]) -> None:
        self._by_lower: dict[str, SObjectType] = {}
        self._by_prefix: dict[str, SObjectType] = {}
        for sobject in types:
            self.register(sobject)

    def register(self, sobject: SObjectType) -> None:
        self._by_lower[sobject.name.lower()] = sobject
        self._by_prefix[sobject.key_prefix] = sobject

    def get(self, name: str) -> SObjectType | None:
        return self._by_lower.get(name.lower())

    def by_prefix(self, prefix: str) -> SObjectType | None:
        return self._by_prefix.get(prefix)

    def all(self) -> list[SObjectType]:
        return sorted(self._by_lower.values(), key=lambda t: t.name)

    def describe_global(self, version: str) -> dict[str, Any]:
        """``GET /sobjects``."""
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [t.summary(version) for t in self.all()],
        }


# --- the standard objects -----------------------------------------------------------------


def _system_fields(*, owner: bool = True) -> list[FieldDef]:
    fields = [
        FieldDef(
            "IsDeleted", "Deleted", "boolean", nillable=False, createable=False, updateable=False
        ),
    ]
    if owner:
        fields.append(
            FieldDef(
                "OwnerId",
                "Owner ID",
                "reference",
                nillable=False,
                updateable=True,
                reference_to=("User",),
                relationship_name="Owner",
                default="$user",
            )
        )
    fields += [
        FieldDef(
            "CreatedDate",
            "Created Date",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
        ),
        FieldDef(
            "CreatedById",
            "Created By ID",
            "reference",
            nillable=False,
            createable=False,
            updateable=False,
            reference_to=("User",),
            relationship_name="CreatedBy",
        ),
        FieldDef(
            "LastModifiedDate",
            "Last Modified Date",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
        ),
        FieldDef(
            "LastModifiedById",
            "Last Modified By ID",
            "reference",
            nillable=False,
            createable=False,
            updateable=False,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
        ),
        FieldDef(
            "SystemModstamp",
            "System Modstamp",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
        ),
    ]
    return fields


def _id(label: str) -> FieldDef:
    return FieldDef(
        "Id",
        label,
        "id",
        length=18,
        nillable=False,
        createable=False,
        updateable=False,
        id_lookup=True,
    )


def _text(name: str, label: str, length: int = 255, **kwargs: Any) -> FieldDef:
    return FieldDef(name, label, "string", length=length, **kwargs)


def _phone(name: str, label: str) -> FieldDef:
    return FieldDef(name, label, "phone", length=40)


def _long(name: str, label: str, length: int = 32000) -> FieldDef:
    return FieldDef(name, label, "textarea", length=length)


def _picklist(name: str, label: str, values: tuple[str, ...], **kwargs: Any) -> FieldDef:
    return FieldDef(name, label, "picklist", length=255, picklist_values=values, **kwargs)


def _ref(name: str, label: str, to: tuple[str, ...], relationship: str, **kwargs: Any) -> FieldDef:
    return FieldDef(
        name,
        label,
        "reference",
        length=18,
        reference_to=to,
        relationship_name=relationship,
        **kwargs,
    )


def _name(label: str, length: int) -> FieldDef:
    """The compound Name of a person (Contact, Lead, User): read-only, built from its parts."""
    return FieldDef(
        "Name",
        label,
        "string",
        length=length,
        createable=False,
        updateable=False,
        name_field=True,
        calculated=True,
    )


_INDUSTRIES = (
    "Agriculture",
    "Banking",
    "Communications",
    "Consulting",
    "Education",
    "Electronics",
    "Finance",
    "Manufacturing",
    "Retail",
    "Technology",
    "Other",
)
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")


def _account() -> SObjectType:
    return SObjectType(
        "Account",
        "Account",
        "Accounts",
        "001",
        [
            _id("Account ID"),
            *_system_fields()[:1],
            _text("Name", "Account Name", 255, nillable=False, name_field=True, id_lookup=True),
            _picklist(
                "Type",
                "Account Type",
                ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"),
            ),
            _ref("ParentId", "Parent Account ID", ("Account",), "Parent"),
            FieldDef("BillingStreet", "Billing Street", "textarea", length=255),
            _text("BillingCity", "Billing City", 40),
            _text("BillingState", "Billing State/Province", 80),
            _text("BillingPostalCode", "Billing Zip/Postal Code", 20),
            _text("BillingCountry", "Billing Country", 80),
            _phone("Phone", "Account Phone"),
            _phone("Fax", "Account Fax"),
            _text("AccountNumber", "Account Number", 40),
            FieldDef("Website", "Website", "url", length=255),
            _picklist("Industry", "Industry", _INDUSTRIES),
            FieldDef("NumberOfEmployees", "Employees", "int"),
            _long("Description", "Account Description"),
            *_system_fields()[1:],
        ],
    )


def _contact() -> SObjectType:
    return SObjectType(
        "Contact",
        "Contact",
        "Contacts",
        "003",
        [
            _id("Contact ID"),
            *_system_fields()[:1],
            _ref("AccountId", "Account ID", ("Account",), "Account"),
            _text("LastName", "Last Name", 80, nillable=False),
            _text("FirstName", "First Name", 40),
            _picklist("Salutation", "Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
            _name("Full Name", 121),
            _phone("Phone", "Business Phone"),
            _phone("Fax", "Business Fax"),
            _phone("MobilePhone", "Mobile Phone"),
            _phone("HomePhone", "Home Phone"),
            _phone("OtherPhone", "Other Phone"),
            FieldDef("Email", "Email", "email", length=80),
            _text("Title", "Title", 128),
            _text("Department", "Department", 80),
            _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
            _long("Description", "Contact Description"),
            *_system_fields()[1:],
        ],
    )


def _lead() -> SObjectType:
    return SObjectType(
        "Lead",
        "Lead",
        "Leads",
        "00Q",
        [
            _id("Lead ID"),
            *_system_fields()[:1],
            _text("LastName", "Last Name", 80, nillable=False),
            _text("FirstName", "First Name", 40),
            _picklist("Salutation", "Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
            _name("Full Name", 121),
            _text("Title", "Title", 128),
            _text("Company", "Company", 255, nillable=False),
            _text("State", "State/Province", 80),
            _phone("Phone", "Phone"),
            _phone("MobilePhone", "Mobile Phone"),
            _phone("Fax", "Fax"),
            FieldDef("Email", "Email", "email", length=80),
            FieldDef("Website", "Website", "url", length=255),
            _long("Description", "Description"),
            _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
            _picklist(
                "Status",
                "Status",
                (
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ),
                nillable=False,
                default="Open - Not Contacted",
            ),
            _picklist("Industry", "Industry", _INDUSTRIES),
            FieldDef(
                "IsConverted",
                "Converted",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
            ),
            *_system_fields()[1:],
        ],
    )


def _case() -> SObjectType:
    return SObjectType(
        "Case",
        "Case",
        "Cases",
        "500",
        [
            _id("Case ID"),
            *_system_fields()[:1],
            FieldDef(
                "CaseNumber",
                "Case Number",
                "string",
                length=30,
                nillable=False,
                createable=False,
                updateable=False,
                name_field=True,
                auto_number=True,
                id_lookup=True,
            ),
            _ref("ContactId", "Contact ID", ("Contact",), "Contact"),
            _ref("AccountId", "Account ID", ("Account",), "Account"),
            _text("SuppliedName", "Name", 80),
            FieldDef("SuppliedEmail", "Email Address", "email", length=80),
            _text("SuppliedPhone", "Phone", 40),
            _text("SuppliedCompany", "Company", 80),
            _picklist(
                "Type",
                "Case Type",
                ("Mechanical", "Electrical", "Electronic", "Structural", "Other"),
            ),
            _picklist("Status", "Status", ("New", "Working", "Escalated", "Closed"), default="New"),
            _picklist(
                "Reason",
                "Case Reason",
                (
                    "Installation",
                    "Equipment Complexity",
                    "Performance",
                    "Breakdown",
                    "Equipment Design",
                    "Feedback",
                    "Other",
                ),
            ),
            _picklist("Origin", "Case Origin", ("Phone", "Email", "Web")),
            _text("Subject", "Subject", 255),
            _picklist("Priority", "Priority", ("High", "Medium", "Low"), default="Medium"),
            _long("Description", "Description"),
            FieldDef(
                "IsClosed",
                "Closed",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            FieldDef("ClosedDate", "Closed Date", "datetime", createable=False, updateable=False),
            FieldDef("IsEscalated", "Escalated", "boolean", nillable=False, default=False),
            *_system_fields()[1:],
        ],
    )


def _activity_fields() -> list[FieldDef]:
    return [
        _ref("WhoId", "Name ID", ("Contact", "Lead"), "Who"),
        _ref("WhatId", "Related To ID", ("Account", "Opportunity", "Case"), "What"),
    ]


def _task() -> SObjectType:
    return SObjectType(
        "Task",
        "Task",
        "Tasks",
        "00T",
        [
            _id("Activity ID"),
            *_activity_fields(),
            FieldDef(
                "Subject",
                "Subject",
                "combobox",
                length=255,
                name_field=True,
                picklist_values=("Call", "Send Letter", "Send Quote", "Other"),
            ),
            FieldDef("ActivityDate", "Due Date Only", "date"),
            _picklist(
                "Status",
                "Status",
                ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
                nillable=False,
                default="Not Started",
            ),
            _picklist(
                "Priority", "Priority", ("High", "Normal", "Low"), nillable=False, default="Normal"
            ),
            FieldDef(
                "IsHighPriority",
                "High Priority",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            *_system_fields()[1:2],
            _long("Description", "Description"),
            _picklist("Type", "Type", ("Call", "Email", "Meeting", "Other")),
            *_system_fields()[:1],
            _ref(
                "AccountId",
                "Account ID",
                ("Account",),
                "Account",
                createable=False,
                updateable=False,
            ),
            FieldDef(
                "IsClosed",
                "Closed",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            FieldDef("CallDurationInSeconds", "Call Duration", "int"),
            _picklist("CallType", "Call Type", ("Internal", "Inbound", "Outbound")),
            _text("CallDisposition", "Call Result", 255),
            _text("CallObject", "Call Object Identifier", 255),
            _picklist(
                "TaskSubtype",
                "Task Subtype",
                ("Task", "Email", "ListEmail", "Cadence", "Call"),
                updateable=False,
                default="Task",
            ),
            *_system_fields()[2:],
            # Custom fields of the BIZTEL call-history integration (seed 001, section 2.3).
            _text("B_ServerIP__c", "サーバ IP", 50),
            _text("B_UniqueId__c", "ユニーク ID", 100, external_id=True),
            FieldDef(
                "WavUrlImg__c",
                "音声再生",
                "string",
                length=1300,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            _phone("B_PhoneTo__c", "着信電話番号"),
            FieldDef("B_CallStartDateTime__c", "通話開始日時", "datetime"),
            FieldDef("B_CallEndDateTime__c", "通話終了日時", "datetime"),
            _phone("B_PhoneFrom__c", "発信電話番号"),
            _text("B_AgentIdTo__c", "着信エージェント ID", 10),
            _text("B_AgentIdFrom__c", "発信エージェント ID", 10),
            _phone("B_NaisenTo__c", "着信内線番号"),
            _phone("B_NaisenFrom__c", "発信内線番号"),
        ],
    )


def _event() -> SObjectType:
    return SObjectType(
        "Event",
        "Event",
        "Events",
        "00U",
        [
            _id("Activity ID"),
            *_activity_fields(),
            FieldDef(
                "Subject",
                "Subject",
                "combobox",
                length=255,
                name_field=True,
                picklist_values=("Call", "Email", "Meeting", "Send Letter/Quote", "Other"),
            ),
            _text("Location", "Location", 255),
            FieldDef("IsAllDayEvent", "All-Day Event", "boolean", nillable=False, default=False),
            FieldDef("ActivityDateTime", "Due Date Time", "datetime"),
            FieldDef("ActivityDate", "Due Date Only", "date"),
            FieldDef("DurationInMinutes", "Duration", "int"),
            FieldDef("StartDateTime", "Start Date Time", "datetime"),
            FieldDef("EndDateTime", "End Date Time", "datetime"),
            _long("Description", "Description"),
            _picklist("Type", "Type", ("Call", "Email", "Meeting", "Other")),
            *_system_fields(),
        ],
    )


def _opportunity() -> SObjectType:
    return SObjectType(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        "006",
        [
            _id("Opportunity ID"),
            *_system_fields()[:1],
            _ref("AccountId", "Account ID", ("Account",), "Account"),
            _text("Name", "Name", 120, nillable=False, name_field=True),
            _long("Description", "Description"),
            _picklist(
                "StageName",
                "Stage",
                (
                    "Prospecting",
                    "Qualification",
                    "Needs Analysis",
                    "Proposal/Price Quote",
                    "Negotiation/Review",
                    "Closed Won",
                    "Closed Lost",
                ),
                nillable=False,
            ),
            FieldDef("Amount", "Amount", "currency"),
            FieldDef("Probability", "Probability (%)", "percent"),
            FieldDef("CloseDate", "Close Date", "date", nillable=False),
            _picklist(
                "Type", "Opportunity Type", ("Existing Customer - Upgrade", "New Customer", "Other")
            ),
            _picklist("LeadSource", "Lead Source", _LEAD_SOURCES),
            FieldDef(
                "IsClosed",
                "Closed",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            FieldDef(
                "IsWon",
                "Won",
                "boolean",
                nillable=False,
                createable=False,
                updateable=False,
                calculated=True,
            ),
            *_system_fields()[1:],
        ],
    )


def _user() -> SObjectType:
    return SObjectType(
        "User",
        "User",
        "Users",
        "005",
        [
            _id("User ID"),
            _text("Username", "Username", 80, nillable=False, unique=True, id_lookup=True),
            _text("LastName", "Last Name", 80, nillable=False),
            _text("FirstName", "First Name", 40),
            _name("Full Name", 121),
            _text("CompanyName", "Company Name", 80),
            FieldDef("Email", "Email", "email", length=128, nillable=False),
            _text("Alias", "Alias", 8, nillable=False),
            FieldDef("IsActive", "Active", "boolean", nillable=False, default=True),
            _phone("Phone", "Phone"),
            _text("Extension", "Extension", 40),
            _phone("MobilePhone", "Mobile"),
            _text("TimeZoneSidKey", "Time Zone", 40, nillable=False),
            _text("LocaleSidKey", "Locale", 40, nillable=False),
            _text("LanguageLocaleKey", "Language", 40, nillable=False),
            *_system_fields(owner=False),
        ],
        createable=False,
        deletable=False,
    )


def default_schema() -> Schema:
    """The org the sandbox starts with: the objects callbridge's features read and write."""
    return Schema(
        [_account(), _contact(), _lead(), _case(), _task(), _event(), _opportunity(), _user()]
    )
