"""Dagster assets and asset checks. Each is thin: it calls into ``standards`` or ``privacy`` and
records what an analyst needs to see (row counts, outcomes, budget) as metadata."""
