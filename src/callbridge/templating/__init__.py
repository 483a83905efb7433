"""The BIZTEL-compatible template language: parse once, expand safely many times.

Pure code: no database, no network. Typical use::

    from callbridge.templating import Context, compile_template

    url = compile_template(rule.url, Context.URL, response_names={"CONTACT_ID"})
    url.warnings, url.normalisations          # shown in the save answer
    url.expand(
        {"TEL": "07075373713", "RESPONSE_CONTACT_ID": "003…"},    # untrusted values
        system_urls={"OAUTH_INSTANCE_URL": account.instance_url},  # trusted base URLs
        now=event.occurred_at,
        tz=settings.timezone,
    )

Trust is decided by the argument, never by the value: everything in ``values`` is
untrusted and escaped for the place it lands in (URL component, SOQL literal, SOSL
search term, JSON string, header value, XML text); only ``system_urls`` are inserted as
URLs, and only at the very start of a URL template. See docs/templates.md for the
language itself.
"""

from callbridge.templating.compiled import (
    CompiledTemplate,
    body_context_for,
    compile_template,
    split_header_lines,
)
from callbridge.templating.functions import DEFAULT_REGION
from callbridge.templating.names import (
    BUILTIN_NAMES,
    CALL_NAMES,
    DATE_NAMES,
    FUNCTION_NAMES,
    SYSTEM_URL_NAMES,
    Context,
    is_variable_name,
)
from callbridge.templating.problems import (
    Problem,
    Severity,
    TemplateError,
    TemplateExpansionError,
)

__all__ = [
    "BUILTIN_NAMES",
    "CALL_NAMES",
    "DATE_NAMES",
    "DEFAULT_REGION",
    "FUNCTION_NAMES",
    "SYSTEM_URL_NAMES",
    "CompiledTemplate",
    "Context",
    "Problem",
    "Severity",
    "TemplateError",
    "TemplateExpansionError",
    "body_context_for",
    "compile_template",
    "is_variable_name",
    "split_header_lines",
]
