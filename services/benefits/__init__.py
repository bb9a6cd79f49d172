"""Benefits: an auditable ledger of every benefit adjustment and premium of a case, derived from its events; run by
``reintegration serve benefits``."""
