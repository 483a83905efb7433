"""Record IDs: the 18-character case-safe form (SALESFORCE.md, Records)."""

from __future__ import annotations

import re

from callbridge.sandbox import SandboxState, case_safe_suffix, normalize_id, to_18
from callbridge.sandbox.ids import make_id15


def test_case_safe_suffix_matches_the_documented_example() -> None:
    assert case_safe_suffix("001D000000IqhSL") == "IAZ"
    assert to_18("001D000000IqhSL") == "001D000000IqhSLIAZ"


def test_an_18_character_id_is_case_insensitive() -> None:
    assert normalize_id("001D000000IqhSLIAZ") == "001D000000IqhSL"
    assert normalize_id("001d000000iqhsliaz") == "001D000000IqhSL"
    assert normalize_id("001D000000IqhSL") == "001D000000IqhSL"


def test_malformed_ids_are_refused() -> None:
    assert normalize_id("001D000000IqhS") is None  # 14 characters
    assert normalize_id("001D000000IqhSL-AZ") is None
    assert normalize_id("0010000000000009AA") is None  # suffix marks a digit upper case


def test_new_ids_carry_key_prefixes_and_a_valid_suffix(state: SandboxState) -> None:
    prefixes = {
        "Account": "001",
        "Contact": "003",
        "Lead": "00Q",
        "Case": "500",
        "Task": "00T",
        "Event": "00U",
        "User": "005",
        "Opportunity": "006",
    }
    for name, prefix in prefixes.items():
        sobject = state.schema.get(name)
        assert sobject is not None and sobject.key_prefix == prefix
        new_id = state.new_id(sobject)
        assert re.fullmatch(prefix + r"[0-9A-Za-z]{15}", new_id)
        assert new_id == to_18(new_id[:15])


def test_make_id15_is_fifteen_characters() -> None:
    assert len(make_id15("500", "5g", 62**9)) == 15
