"""Feeds: opens employers' pull consumers on their own feed (``reintegration.feed.<enterprise>``); run by
``reintegration serve feeds``."""
