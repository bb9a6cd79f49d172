"""Disclosures: a record of every message delivered to an employer and of every auditor query; run by
``reintegration serve disclosures``."""
