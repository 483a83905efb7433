"""MONITOR_LINK(…): the playback link of a call, from the caller's link maker."""

from __future__ import annotations

import json

from callbridge.templating import compile_template

SEED_BODY = (
    '{"Origin": "Phone","ContactId":"{RESPONSE_CONTACT_ID}","Description": "MONITOR_LINK({ID})"}'
)


def test_uses_the_link_maker_in_a_json_body() -> None:
    template = compile_template(SEED_BODY, "body_json", response_names={"CONTACT_ID"})
    assert template.uses_monitor_link
    made: list[str] = []

    def maker(call_ref: str) -> str:
        made.append(call_ref)
        return f"https://cti.example.jp/monitor_link/{call_ref}?exp=1&kid=1&sig=abc"

    body = json.loads(
        template.expand({"ID": "1700000000.42", "RESPONSE_CONTACT_ID": "003"}, link_maker=maker)
    )
    assert made == ["1700000000.42"]
    assert (
        body["Description"]
        == "https://cti.example.jp/monitor_link/1700000000.42?exp=1&kid=1&sig=abc"
    )


def test_without_a_maker_it_is_the_plain_svaddr_link() -> None:
    template = compile_template("MONITOR_LINK({ID})", "plain")
    expanded = template.expand({"ID": "a/b c"}, system_urls={"SVADDR": "https://cti.example.jp/"})
    assert expanded == "https://cti.example.jp/monitor_link/a%2Fb%20c"


def test_a_hostile_link_stays_inside_its_json_string() -> None:
    template = compile_template(SEED_BODY, "body_json", response_names={"CONTACT_ID"})
    body = template.expand({"ID": "x"}, link_maker=lambda ref: 'evil","Status":"Closed')
    assert json.loads(body)["Description"] == 'evil","Status":"Closed'


def test_other_templates_do_not_need_a_maker() -> None:
    assert not compile_template("{SVADDR}monitor_link/{ID}", "plain").uses_monitor_link
