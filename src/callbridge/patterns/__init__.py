"""Patterns: PCRE-style variable extraction, response/condition matching, JSONPath.

Pure code: no database, no network. Compile once when a rule is saved or loaded::

    from callbridge.patterns import compile_extractor, compile_pattern

    pattern = compile_pattern('/"searchRecords":¥[¥]/')   # ¥ read as backslash
    pattern.normalisations                                  # reported in the save answer
    pattern.matches(body, timeout=0.5)                      # response pattern

    extractor = compile_extractor('/"Name":"(?P<NAME>.*)",/')  # or "NAME = $.path" lines
    result = extractor.extract(body, timeout=0.5, json_body=True)
    result.named, result.groups, result.response_variables(), result.ivr_variables()

Every match runs under a time limit (``PatternTimeout``); compile errors are
``PatternError`` with ``message`` and ``position``. See docs/templates.md.
"""

from callbridge.patterns.extraction import (
    Extraction,
    ExtractionError,
    Extractor,
    PatternError,
    PatternTimeout,
    decode_json_string_content,
)
from callbridge.patterns.jsonpath_extraction import (
    JSONPathExtractions,
    compile_jsonpath_extractions,
    looks_like_jsonpath,
)
from callbridge.patterns.regex_patterns import CompiledPattern, compile_pattern


def compile_extractor(text: str) -> CompiledPattern | JSONPathExtractions:
    """An extraction field: JSONPath when every line reads ``NAME = $…``, else a pattern."""
    if looks_like_jsonpath(text):
        return compile_jsonpath_extractions(text)
    return compile_pattern(text)


__all__ = [
    "CompiledPattern",
    "Extraction",
    "ExtractionError",
    "Extractor",
    "JSONPathExtractions",
    "PatternError",
    "PatternTimeout",
    "compile_extractor",
    "compile_jsonpath_extractions",
    "compile_pattern",
    "decode_json_string_content",
    "looks_like_jsonpath",
]
