"""Hypothesis profiles for the property tests.

- "ci" (default): 600 examples a test. The CRDT, HLC, task-document and service-model tests
  (test_crdt_laws, test_hlc, test_taskdoc, test_service_model) run about 10,200 examples with it,
  in about 35 s on a 2-core machine; the whole property suite stays around a minute.
- "dev": a quick pass while editing.
- "deep": a long hunt for rare counterexamples (worth a run before changing the CRDT code).

Pick one with HYPOTHESIS_PROFILE=dev|ci|deep (not --hypothesis-profile: these are registered
after pytest starts). Tests whose examples are expensive take a share of the profile's count with
`strategies.scaled`. The profile is loaded when this directory is collected, so @given tests
collected after it elsewhere without their own max_examples get it too.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = dict(deadline=None, print_blob=False, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("ci", max_examples=600, **_QUIET)
settings.register_profile("dev", max_examples=60, **_QUIET)
settings.register_profile("deep", max_examples=10_000, **_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
