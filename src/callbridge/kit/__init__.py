"""Small shared helpers with no business meaning."""
