"""Call-action rules (DESIGN.md §3.6, §6): what callbridge sends to the CRM for each call
event, and the engine that runs them."""
