"""Seed 000 §3 (BIZTEL's API-linked IVR with Salesforce) as an admin pastes it, and seed
003's ANI lookup (Webex) as a three-step IVR."""

from __future__ import annotations

from typing import Any

# §3.1: URL and method exactly as printed (the space before ?q= is the manual's).
SEED_URL = (
    "{OAUTH_INSTANCE_URL}/services/data/v45.0/search ?q=FIND {{TEL}} IN PHONE FIELDS "
    "RETURNING Account(Id, Name, Phone)"
)
GREETING = (
    "お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
    "しばらくお待ちください。"
)
NAMED_GREETING = (
    "{CODE1}様、お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
    "しばらくお待ちください。"
)


def seed_000_ivr(account_id: int | None, key: str = "seed000", **extra: Any) -> dict[str, Any]:
    """§3.1 and §3.2, field by field, with the manual's 「なし」 where it prints none."""
    return {
        "key": key,
        "name": "Salesforce 取引先検索",
        "auth_type": "oauth",
        "oauth_account_id": account_id,
        "url": SEED_URL,
        "method": "GET",
        "headers": "なし",
        "body": "なし",
        "max_digits": 0,
        "digits_pattern": "なし",
        "pre_guidance": None,
        "on_error": {"guidance": None, "transfer": {"kind": "end_rule"}},
        "responses": [
            {
                "priority": 1,
                "response_code": "200",
                "response_pattern": '/"searchRecords":¥[¥]/',
                "extract_pattern": "なし",
                "guidance": {"type": "tts", "text": GREETING},
                "transfer": {"kind": "callcenter", "target": "support"},
            },
            {
                "priority": 2,
                "response_code": "200",
                "response_pattern": "なし",
                "extract_pattern": '/"Name":"(?P<NAME>.*)",/',
                "guidance": {"type": "tts", "text": NAMED_GREETING},
                "transfer": {"kind": "callcenter", "target": "support"},
            },
        ],
        **extra,
    }


SOQL = "{OAUTH_INSTANCE_URL}/services/data/v62.0/query?q="


def seed_003_ivr(account_id: int | None, key: str = "ani") -> dict[str, Any]:
    """Account by ANI, then the Contact by ANI, then the Contact's open Case; callers with
    an open High-priority case go to the VIP call center."""
    return {
        "key": key,
        "name": "ANI lookup (Webex flow)",
        "auth_type": "oauth",
        "oauth_account_id": account_id,
        "timeout_seconds": 5,
        "url": SOQL + "SELECT Id, Name FROM Account WHERE Phone = '{TEL}' LIMIT 1",
        "extract_pattern": "ACCOUNT_ID = $.records[0].Id\nACCOUNT_NAME = $.records[0].Name",
        "steps": [
            {
                "name": "contact",
                "url": SOQL + "SELECT Id, Name FROM Contact WHERE Phone = '{TEL}' LIMIT 1",
                "extract_pattern": "CONTACT_ID = $.records[0].Id",
            },
            {
                "name": "open_case",
                "url": SOQL + "SELECT Id, CaseNumber, Priority FROM Case WHERE ContactId = "
                "'{RESPONSE_CONTACT_ID}' AND IsClosed = false ORDER BY CreatedDate DESC LIMIT 1",
                "condition_code": "{RESPONSE_CONTACT_ID}",
                "extract_pattern": (
                    "CASE_ID = $.records[0].Id\nCASE_NUMBER = $.records[0].CaseNumber\n"
                    "PRIORITY = $.records[0].Priority"
                ),
            },
        ],
        "responses": [
            {
                "priority": 1,
                "response_code": "*",
                "step": "main",
                "condition_code": "{RESPONSE_PRIORITY}",
                "condition_pattern": "/^High$/",
                "guidance": {
                    "type": "tts",
                    "text": "{RESPONSE_ACCOUNT_NAME}様、ケース番号{RESPONSE_CASE_NUMBER}について"
                    "担当者におつなぎします。",
                },
                "transfer": {"kind": "callcenter", "target": "vip"},
            },
            {
                "priority": 2,
                "response_code": "200",
                "step": "main",
                "condition_code": "{RESPONSE_ACCOUNT_ID}",
                "guidance": {
                    "type": "tts",
                    "text": "{RESPONSE_ACCOUNT_NAME}様、お電話ありがとうございます。",
                },
                "transfer": {"kind": "callcenter", "target": "support"},
            },
            {
                "priority": 3,
                "response_code": "200",
                "step": "main",
                "guidance": {"type": "tts", "text": "お電話ありがとうございます。"},
                "transfer": {"kind": "callcenter", "target": "reception"},
            },
        ],
    }
