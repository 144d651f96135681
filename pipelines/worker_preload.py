"""What `collab run`'s fork server holds before it forks a worker: imported there (``worker_server.WORKER_PRELOAD``)
and nowhere else, since importing it does the work.

A worker's imports (Dagster and its storages, the assets, Great Expectations: about 8 CPU s) and Great
Expectations' set-up (its context, the suite of every staged field run once on an empty batch: several CPU
seconds more) were once paid by each worker on its first submission; done here, once, every worker forked
from this process starts with them. Nothing here belongs to a workspace, a charity or a submission (the
instance and the definitions are made in each worker, for its workspace), and no thread is left running
(forking a process with threads can hand the child a lock held for ever).
"""

import gc

# Modules Dagster imports only when an instance is first made or a run first executes, listed because that
# happens in the workers.
import dagster._core.instance.factory
import dagster._core.secrets.env_file
import dagster._core.storage.migration.utils
import dagster._core.storage.root  # noqa: F401
import dagster_postgres  # noqa: F401  (the production profile's instance)
import upath.implementations.local  # noqa: F401  (Dagster's local artifact storage)

import assets.releases
import assets.submissions  # noqa: F401
import pipelines.definitions
import pipelines.instance_storage
import pipelines.runner  # noqa: F401  (what a worker runs)
from collab.expectations import warm_up

warm_up()

# What is loaded here lives as long as every worker: out of the collector's generations, no collection in a worker
# walks it (about 470,000 objects: 0.26 s a full collection), nor writes to its pages, each then copied from the
# server's. 35 extracts of 2,000,000 contacts in all, checked and loaded: 1.5% less CPU (median of 6 pairs, busy
# machine, within its noise; system time 4% less). Collected first: garbage frozen would never be freed.
gc.collect()
gc.freeze()
