"""Run-time settings an admin edits in the UI or through ``/api/v1/settings``."""
