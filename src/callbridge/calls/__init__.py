"""Call events: ingest, the call store (variables, executions, timeline) and the
dispatcher that runs each call's events in order."""
