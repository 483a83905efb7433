"""What an admin looks at every morning: the audit log, the execution search and the
dashboard's charts (DESIGN.md §13)."""
