"""IVR-API: synchronous CRM lookups that answer the PBX with guidance and a transfer target.

``compiler`` turns a stored configuration into templates and patterns compiled once;
``engine`` runs an invocation under the IVR's deadline through the one outbound path;
``writer`` stores what happened on the call after the answer has gone; ``router`` and
``pages`` are the JSON API and the admin UI. See docs/ivr.md.
"""
