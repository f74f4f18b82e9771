"""Hypothesis profiles for the property tests.

- "ci" (default): sized so that the property tests together run more than 10,000 examples while
  the whole property suite stays under about a minute on a 2-core machine.
- "dev": a quick pass while editing.
- "deep": a long hunt for rare counterexamples (run it before changing the CRDT code).

Pick one with HYPOTHESIS_PROFILE=dev|ci|deep. Tests that do I/O scale their own count from the
profile's (see `scaled`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = dict(deadline=None, print_blob=False, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("ci", max_examples=900, **_QUIET)
settings.register_profile("dev", max_examples=60, **_QUIET)
settings.register_profile("deep", max_examples=20_000, **_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
