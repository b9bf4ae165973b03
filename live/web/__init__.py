"""HTTP: the typed endpoint registry, problem+json, the API endpoints and the page routes."""
