"""Deadlines: every legal clock of a case, derived from its events, with durable timers and explanations; run by
``reintegration serve deadlines``."""
