"""The ``reintegration`` command line: run the system, feed the demo, measure, and operate."""
