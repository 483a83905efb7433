"""The demo org: a connected app, a user and Japanese CRM records to try every feature on.

The credentials are documented in docs/sandbox.md; they only open this local stand-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callbridge.sandbox.records import create_record

if TYPE_CHECKING:
    from callbridge.sandbox.state import SandboxState

DEMO_CLIENT_ID = "3MVG9callbridge.Sandbox.DemoApp"
DEMO_CLIENT_SECRET = "SBX0DEMO0SECRET0123456789ABCDEF"
DEMO_USERNAME = "demo@callbridge.sandbox"
DEMO_PASSWORD = "sandbox-demo-1"
DEMO_SECURITY_TOKEN = "SBXDEMOTOKEN000000000000"
DEMO_CALLBACK_URLS = [
    "http://127.0.0.1:8000/oauth_client/callback",
    "http://localhost:8000/oauth_client/callback",
]


def demo_account_fields(login_url: str, name: str = "Sandbox") -> dict[str, str]:
    """The body of ``POST /api/v1/oauth-accounts`` for an account that connects to the
    sandbox at ``login_url`` with the demo user's password grant (no browser needed)."""
    return {
        "name": name,
        "provider": "salesforce",
        "grant_type": "password",
        "login_url": login_url,
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "username": DEMO_USERNAME,
        "password": DEMO_PASSWORD + DEMO_SECURITY_TOKEN,
    }


_ACCOUNTS: list[dict[str, Any]] = [
    {"Name": "CDF 株式会社", "Phone": "07075373713", "Industry": "Technology",
     "Type": "Customer - Direct", "BillingState": "東京都", "BillingCity": "千代田区",
     "Website": "https://cdf.example.jp"},
    {"Name": "株式会社さくら商事", "Phone": "03-1234-5678", "Industry": "Retail",
     "Type": "Customer - Direct", "BillingState": "東京都", "BillingCity": "中央区"},
    {"Name": "なにわ精機株式会社", "Phone": "+81 6 4567 8901", "Industry": "Manufacturing",
     "Type": "Prospect", "BillingState": "大阪府", "BillingCity": "大阪市北区"},
    {"Name": "北海道フーズ合同会社", "Phone": "011-222-3333", "Industry": "Agriculture",
     "Type": "Partner", "BillingState": "北海道", "BillingCity": "札幌市"},
    {"Name": "みなと物流株式会社", "Phone": "045-987-6543", "Industry": "Other",
     "BillingState": "神奈川県", "BillingCity": "横浜市"},
]  # fmt: skip

# (account index, fields)
_CONTACTS: list[tuple[int, dict[str, Any]]] = [
    (0, {"LastName": "佐藤", "FirstName": "花子", "Phone": "07075373713",
         "Email": "hanako.sato@cdf.example.jp", "Title": "総務部長"}),
    (0, {"LastName": "田中", "FirstName": "健一", "Phone": "070-7537-3713",
         "MobilePhone": "080-1111-2222", "Email": "kenichi.tanaka@cdf.example.jp",
         "Title": "営業担当"}),
    (1, {"LastName": "鈴木", "FirstName": "一郎", "Phone": "03-1234-5678",
         "MobilePhone": "+81 90 1234 5678", "Email": "ichiro.suzuki@sakura.example.jp"}),
    (2, {"LastName": "高橋", "FirstName": "由美", "Phone": "06-4567-8901",
         "MobilePhone": "09087654321", "Email": "yumi.takahashi@naniwa.example.jp"}),
    (3, {"LastName": "伊藤", "FirstName": "翔", "MobilePhone": "+81 80 3333 4444"}),
]  # fmt: skip

_LEADS: list[dict[str, Any]] = [
    {"LastName": "渡辺", "FirstName": "美咲", "Company": "渡辺デザイン事務所",
     "Phone": "+81 70 7537 3713", "LeadSource": "Phone Inquiry"},
    {"LastName": "山本", "FirstName": "大輔", "Company": "山本工務店",
     "Phone": "092-123-4567", "MobilePhone": "070 1234 5678", "LeadSource": "Web"},
    {"LastName": "中村", "FirstName": "さくら", "Company": "中村商店", "Phone": "0120-123-456",
     "Status": "Working - Contacted"},
]  # fmt: skip

# (contact index, fields)
_CASES: list[tuple[int, dict[str, Any]]] = [
    (0, {"Subject": "請求書の再発行について", "Status": "New", "Origin": "Phone"}),
    (2, {"Subject": "配送状況の確認", "Status": "Working", "Origin": "Web",
         "Priority": "Low"}),
    (1, {"Subject": "製品の初期不良", "Status": "Closed", "Origin": "Phone",
         "Priority": "High", "Description": "交換品を発送済み"}),
]  # fmt: skip


def load_demo_data(state: SandboxState) -> None:
    """Fill an empty org with the demo identities and records."""
    user = state.register_user(
        DEMO_USERNAME,
        DEMO_PASSWORD,
        DEMO_SECURITY_TOKEN,
        last_name="デモ",
        first_name="太郎",
        email="demo@callbridge.example",
    )
    state.register_connected_app(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        name="callbridge demo",
        callback_urls=list(DEMO_CALLBACK_URLS),
        loopback_any_port=True,
        client_credentials_username=DEMO_USERNAME,
    )
    schema = state.schema

    def add(name: str, fields: dict[str, Any]) -> str:
        sobject = schema.get(name)
        assert sobject is not None
        return create_record(state, sobject, fields, user_id=user.user_id)

    accounts = [add("Account", fields) for fields in _ACCOUNTS]
    contacts = [add("Contact", {**fields, "AccountId": accounts[i]}) for i, fields in _CONTACTS]
    for fields in _LEADS:
        add("Lead", fields)
    cases = [add("Case", {**fields, "ContactId": contacts[i]}) for i, fields in _CASES]
    add(
        "Task",
        {
            "WhoId": contacts[0],
            "WhatId": cases[0],
            "Subject": "着信 07075373713",
            "Status": "Completed",
            "TaskSubtype": "Call",
            "CallType": "Inbound",
            "CallDurationInSeconds": 185,
            "B_ServerIP__c": "https://callbridge.example.jp",
            "B_UniqueId__c": "1700000000.1",
            "B_PhoneFrom__c": "07075373713",
        },
    )
    add(
        "Opportunity",
        {
            "AccountId": accounts[1],
            "Name": "さくら商事 コールセンター導入",
            "StageName": "Proposal/Price Quote",
            "CloseDate": "2026-12-25",
            "Amount": 1200000,
        },
    )
