"""The auditor's console (``reintegration console``): a small web application on the auditor's own machine.

It shows one case at a time: its events on two time axes, its deadlines, ledger, integrity and disclosures, as known
at any moment or as applying on any day, and its dossier to download. It asks the audit service over NATS with the
auditor's own credentials (:mod:`.asking`) and nothing else: no store, no other secret. The pages are rendered on
the server (:mod:`.app`, Jinja2 templates) from pure view functions (:mod:`.views`); the style sheet and a few
lines of script are served by the console itself.
"""
