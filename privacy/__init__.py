"""A small, auditable privacy library: pseudonymisation, minimisation, bounding, mechanisms,
accounting and post-processing. No Dagster here, and no randomness except OpenDP's samplers.

Privacy unit: one person (``person_key``) per release period. Each public function states what
it bounds and why the guarantee holds; the tests in ``tests/unit/test_privacy_*.py`` check each
statement, including property tests on neighbouring datasets.
"""

import opendp.prelude as dp

# "honest-but-curious": our bounded queries enter OpenDP as user transformations whose stability maps
# are the sensitivities stated (and property-tested) in ``privacy.bounding``; OpenDP then computes ρ
# for any number of privacy units by chaining those maps to its mechanisms' own.
dp.enable_features("contrib", "honest-but-curious")
