"""Worked examples copied verbatim from the BIZTEL manuals (seed 000 and seed 002)."""

from __future__ import annotations

import json

INSTANCE_URL = "https://acme.my.salesforce.com"
SYSTEM_URLS = {"OAUTH_INSTANCE_URL": INSTANCE_URL, "SVADDR": "https://callbridge.example.jp/"}
TEL = "07075373713"
CONTACT_ID = "0032v00003AbCdEAAU"
CASE_ID = "5002v00002mPxwUAAS"

# seed 000 §2 example 1 (queue): find the contact by caller number
EXAMPLE1_URL = (
    "{OAUTH_INSTANCE_URL}/services/data/v45.0/query?q= SELECT+Id,Name FROM Contact WHERE "
    "Phone ='{TEL}'"
)
EXAMPLE1_PATTERN = '/"Id":"(?P<CONTACT_ID>.*)",/'

# seed 000 §2 example 2 (queue): create a case for that contact
EXAMPLE2_URL = "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobject s/case/"
EXAMPLE2_HEADERS = "Content-Type: application/json"
EXAMPLE2_BODY = '{"Origin": "Phone","ContactId":"{RESPONSE_CONTACT_ID}"}'
EXAMPLE2_PATTERN = '/"id":"(?P<CASE_ID>.*)",/'

# seed 000 §2 example 3 (disconnect): attach the playback link to the case
EXAMPLE3_URL = "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/cas e/{RESPONSE_CASE_ID}"
EXAMPLE3_BODY = (
    '{"Origin": "Phone","Subject":"コールセンターへの着信です ","ContactId":'
    '"{RESPONSE_CONTACT_ID}","Description": '
    '"https://sXXXXXXXXXXXX.u.biztel.jp:8000/monitor_link/{ID}"}'
)

# seed 000 §3 API-linked IVR
IVR_URL = (
    "{OAUTH_INSTANCE_URL}/services/data/v45.0/search ?q=FIND {{TEL}} IN PHONE FIELDS "
    "RETURNING Account(Id, Name, Phone)"
)
IVR_NO_ACCOUNT_PATTERN = '/"searchRecords":¥[¥]/'
IVR_NAME_PATTERN = '/"Name":"(?P<NAME>.*)",/'
IVR_TTS = (
    "{CODE1}様、お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
    "しばらくお待ちください。"
)

# seed 000 §4 response bodies, as printed (the manual pretty-prints them)
CASE_CREATED_PRINTED = '{ "id": "5002v00002mPxwUAAS", "success": true, "errors": [] }'
SOSL_RESPONSE_PRINTED = (
    '{ "searchRecords": [ { "attributes": { "type": "Account", "url": '
    '"/services/data/v45.0/sobjects/Account/0012v00002uhRmWAAU" }, "Id": '
    '"0012v00002uhRmWAAU", "Name": "CDF 株式会社", "Phone": "07075373713" } ] }'
)


def compact(printed: str) -> str:
    """The same JSON as Salesforce sends it on the wire (no spaces)."""
    return json.dumps(json.loads(printed), ensure_ascii=False, separators=(",", ":"))


CASE_CREATED = compact(CASE_CREATED_PRINTED)
SOSL_RESPONSE = compact(SOSL_RESPONSE_PRINTED)
SOSL_EMPTY = '{"searchRecords":[]}'
QUERY_RESPONSE = (
    '{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Contact","url":'
    '"/services/data/v45.0/sobjects/Contact/0032v00003AbCdEAAU"},"Id":"0032v00003AbCdEAAU",'
    '"Name":"山田 太郎"}]}'
)
QUERY_RESPONSE_TWO = (
    '{"totalSize":2,"done":true,"records":[{"attributes":{"type":"Contact","url":'
    '"/services/data/v45.0/sobjects/Contact/0032v00003AbCdEAAU"},"Id":"0032v00003AbCdEAAU",'
    '"Name":"山田 太郎"},{"attributes":{"type":"Contact","url":'
    '"/services/data/v45.0/sobjects/Contact/0032v00003XyZwVAAU"},"Id":"0032v00003XyZwVAAU",'
    '"Name":"山田 花子"}]}'
)
