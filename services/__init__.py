"""The production services, one package each in the same shape (handlers, application, outbox, views, main);
:mod:`services.registry` lists them and ``reintegration serve <name>`` (or ``up``, compose) runs each."""
