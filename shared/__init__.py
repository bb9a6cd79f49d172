"""Code shared by every service: message contracts, the rulebook and infrastructure adapters."""
