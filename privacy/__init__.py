"""A small, auditable privacy library: pseudonymisation, minimisation, bounding, mechanisms,
accounting and post-processing. No Dagster here, and no randomness except OpenDP's samplers.

OpenDP is imported (with its features enabled) by ``privacy.mechanisms`` only, so that
``privacy.combine`` (post-processing for readers) needs nothing beyond the standard library.

Privacy unit: one person (``unit_key``: a linkage cluster across the charities that link records, one
reference at one charity elsewhere) per release period. Each public function states what
it bounds and why the guarantee holds; the tests in ``tests/unit/test_privacy_*.py`` check each
statement, including property tests on neighbouring datasets.
"""
