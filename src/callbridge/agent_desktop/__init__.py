"""The agent desktop (DESIGN §12): the agent console, screen-pop profiles and the pops
that reach an agent's browser when a call rings at or is answered on their extension."""
