"""Run every benchmark in turn: `make bench`."""

import runpy
import sys

BENCHMARKS = [
    "bench.ingest",
    "bench.s3_ingest",
    "bench.hostile",
    "bench.utility",
    "bench.coverage",
    "bench.privacy_audit",
    "bench.linkage",
    "bench.portal",
]

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        sys.argv = [name]
        runpy.run_module(name, run_name="__main__")
