"""CRM outages lose no work (DESIGN.md §6): circuits per CRM in the database, parked call
events, the probe that tests recovery, and re-runs of failed executions."""
