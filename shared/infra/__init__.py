"""Adapters every service process runs on: settings, the event store, the clock, retries and backoff, the JetStream
streams, the outbox relay, the trajectory consumer and the derived-service runner."""
