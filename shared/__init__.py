"""Code the service processes import: message contracts (``events``), rules (``rulebook``), infrastructure
adapters (``infra``) and the one-machine deployment (``embedded``)."""
