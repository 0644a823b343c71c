"""Shared pytest setup. Hypothesis: no per-example deadline (the machines are shared and timing
is not what these tests check); failures print the reproduction blob and seed."""

from hypothesis import HealthCheck, settings

settings.register_profile("spikepack", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("spikepack")
