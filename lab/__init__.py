"""The lab: what developers, CI and demos run (generator, a party's client, demo, probes, benchmarks, fault
scenarios). It ships in the source distribution beside the product and is left out of the production image; no
product module imports it."""
