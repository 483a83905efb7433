"""設定確認 (seed 001 手順4, DESIGN §11.5): ask Salesforce whether the link can work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callbridge.history.salesforce import SalesforceFailure, Sub, api_path, composite, error_message
from callbridge.history.schemas import CheckMessage, CheckResult
from callbridge.models import HistoryLink, OAuthAccount
from callbridge.outbound import Outbound

# The activity custom fields of seed 001 §2.3 that callbridge writes (the formula
# field WavUrlImg__c is read-only and only has to exist).
B_FIELDS = (
    "B_ServerIP__c",
    "B_UniqueId__c",
    "B_PhoneTo__c",
    "B_CallStartDateTime__c",
    "B_CallEndDateTime__c",
    "B_PhoneFrom__c",
    "B_AgentIdTo__c",
    "B_AgentIdFrom__c",
    "B_NaisenTo__c",
    "B_NaisenFrom__c",
)
FORMULA_FIELD = "WavUrlImg__c"


async def check_link(
    link: HistoryLink,
    account: OAuthAccount | None,
    outbound: Outbound,
    _: Callable[[str], str],
) -> CheckResult:
    messages: list[CheckMessage] = []

    def invalid(field: str, label: str, detail: str) -> None:
        text = _("{label} is invalid").format(label=label)
        messages.append(CheckMessage(field=field, message=f"{text} ({detail})" if detail else text))

    if not link.phone_numbers:
        messages.append(
            CheckMessage(field="phone_numbers", message=_("Phone number settings are missing"))
        )
    account_label = _("Salesforce account")
    if account is None or account.provider != "salesforce":
        invalid("oauth_account_id", account_label, _("not a Salesforce account"))
        return CheckResult(ok=False, messages=messages)
    base = await outbound.instance_url(account.id)
    if not base:
        invalid("oauth_account_id", account_label, _("not connected"))
        return CheckResult(ok=False, messages=messages)
    names = [o["api_name"] for o in link.objects]
    subs = [Sub("GET", api_path(f"/sobjects/{name}/describe"), heavy=False) for name in names]
    subs.append(Sub("GET", api_path("/sobjects/Task/describe"), heavy=False))
    subs.append(Sub("GET", api_path("/sobjects"), heavy=False))
    try:
        answers = await composite(outbound, account.id, base, subs, 20.0)
    except SalesforceFailure as failure:
        invalid("oauth_account_id", account_label, failure.said.render(_))
        return CheckResult(ok=False, messages=messages)
    for index, obj in enumerate(link.objects):
        answer = answers[index]
        label = _("Object {name}").format(name=obj["api_name"])
        if answer.status >= 400 or not isinstance(answer.body, dict):
            invalid(f"objects.{index}.api_name", label, error_message(answer.body) or "")
            continue
        prefix = answer.body.get("keyPrefix")
        if prefix != obj["key_prefix"]:
            invalid(
                f"objects.{index}.key_prefix",
                label,
                _("its key prefix is {found}, not {given}").format(
                    found=prefix, given=obj["key_prefix"]
                ),
            )
    task = answers[len(names)]
    task_fields: dict[str, dict[str, Any]] = {}
    if task.status < 400 and isinstance(task.body, dict):
        task_fields = {str(f["name"]): f for f in task.body.get("fields", [])}
    wanted = [*B_FIELDS, *(m["field"] for m in link.field_mappings or [])]
    for name in wanted:
        found = task_fields.get(name)
        label = _("Task field {name}").format(name=name)
        if found is None:
            invalid("task_fields", label, _("it does not exist or is not visible"))
        elif not found.get("createable"):
            invalid("task_fields", label, _("it cannot be written"))
    if FORMULA_FIELD not in task_fields:
        invalid(
            "task_fields",
            _("Task field {name}").format(name=FORMULA_FIELD),
            _("it does not exist or is not visible"),
        )
    if link.fallback_record:
        await _check_fallback(link, account, base, outbound, answers[-1], invalid, _)
    return CheckResult(
        ok=not messages,
        messages=messages or [CheckMessage(field="", message=_("Configured correctly"))],
    )


async def _check_fallback(
    link: HistoryLink,
    account: OAuthAccount,
    base: str,
    outbound: Outbound,
    global_answer: Any,
    invalid: Callable[[str, str, str], None],
    _: Callable[[str], str],
) -> None:
    label = _("Fallback record")
    prefix = link.fallback_record[:3]
    sobjects = (
        global_answer.body.get("sobjects", []) if isinstance(global_answer.body, dict) else []
    )
    name = next((s["name"] for s in sobjects if s.get("keyPrefix") == prefix), None)
    if name is None:
        invalid(
            "fallback_record",
            label,
            _("no object has the key prefix {prefix}").format(prefix=prefix),
        )
        return
    try:
        answers = await composite(
            outbound,
            account.id,
            base,
            [
                Sub(
                    "GET",
                    api_path(f"/sobjects/{name}/{link.fallback_record}?fields=Id"),
                    heavy=False,
                )
            ],
            20.0,
        )
    except SalesforceFailure as failure:
        invalid("fallback_record", label, failure.said.render(_))
        return
    if answers[0].status >= 400:
        invalid("fallback_record", label, error_message(answers[0].body) or "")
