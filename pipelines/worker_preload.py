"""What `collab run`'s fork server holds before it forks a worker: imported there (``runner.WORKER_PRELOAD``)
and nowhere else, since importing it does the work.

The workers' imports (Dagster, the definitions, Great Expectations: about 7 CPU s) and Great Expectations'
set-up (its context, the suite of every staged field run once on an empty batch: several CPU seconds more,
once paid by each worker on its first submission) are done once, here; every worker forked from this process
starts with them. Nothing here belongs to a workspace, a charity or a submission, and no thread is left
running in the fork server (forking a process with threads can hand the child a lock held for ever).
"""

import pipelines.definitions  # noqa: F401  (the definitions and everything they import)
from collab.expectations import warm_up

warm_up()
