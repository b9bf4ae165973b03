"""Who is asking: signed tokens, roles and principals."""
