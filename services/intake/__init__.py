"""Intake: the request-reply door through which parties report what happens in a case."""
