"""Who is calling: browser sessions, API tokens, CSRF, sign-in throttling."""
