"""API tokens for machines (the PBX) and automation (the configuration API)."""
