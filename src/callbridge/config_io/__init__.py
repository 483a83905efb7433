"""Configuration as code: export and import of one YAML document (DESIGN.md §13)."""
