"""The web UI: server-rendered pages (Jinja2) with htmx for partial updates."""
