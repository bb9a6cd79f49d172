"""Intake: the request-reply door through which parties report what happens in a case; run by
``reintegration serve intake`` (its outbox by ``reintegration relay``)."""
