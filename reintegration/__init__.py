"""The operator's CLI (``reintegration``): parse, call the services' and shared code, print. Run by operators and
by the production image's entrypoint; the lab's commands (demo, bench, chaos) reach ``lab/`` through
:mod:`reintegration.extras`."""
