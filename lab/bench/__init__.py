"""Benchmarks over a real nats-server and real stores, each printing its figures beside a raw baseline measured in
the same run (``reintegration bench ...``)."""
