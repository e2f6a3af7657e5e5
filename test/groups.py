#!/usr/bin/env python3
"""Split the pytest files into groups of about equal running time, for test/run.

    test/groups.py N      prints N lines, each the test files of one group

test/run starts one PostgreSQL cluster per group and runs the groups side by
side.  Most of the suite's time is spent waiting (for a batch's age, a retry's
backoff, Splunk's acknowledgement timeout, a cluster restart, the S3 server),
so on two cores three groups finish far sooner than one.  A file stays whole
in one group: its tests may share fixtures and change their cluster
(restarts, ALTER SYSTEM).

The weights are seconds a file took in a full run on a loaded 2-core machine;
a file not listed counts DEFAULT.  They need not be exact: they only balance
the groups.  The first group gets the most weight (test/run prints its output
as it goes).
"""
import glob
import os
import sys

WEIGHTS = {
    "test_security.py": 190,
    "test_splunk.py": 185,
    "test_opensearch.py": 155,
    "test_s3.py": 150,
    "test_crash_matrix.py": 70,
    "test_presets.py": 120,
    "test_worker.py": 100,
    "test_failures.py": 100,
    "test_s3server.py": 100,
    "test_stress.py": 60,
    "test_hostile.py": 60,
    "test_parquet.py": 40,
    "test_parquet_s3.py": 25,
    "test_s3_partitioning.py": 60,
    "test_parquet_million.py": 35,
    "test_bounds.py": 50,
    "test_delivery.py": 50,
    "test_processors.py": 60,
    "test_json_to_csv.py": 25,
    "test_lambda.py": 70,
    "test_unpack.py": 20,
    "test_postgres.py": 120,
    "test_redshift.py": 45,
    "test_connection_cache.py": 30,
}
DEFAULT = 20


def groups(files, n):
    """Longest first, each into the group with the least weight so far."""
    out = [[0, []] for _ in range(n)]
    for f in sorted(files, key=lambda f: (-WEIGHTS.get(os.path.basename(f), DEFAULT), f)):
        g = min(out, key=lambda g: g[0])
        g[0] += WEIGHTS.get(os.path.basename(f), DEFAULT)
        g[1].append(f)
    out.sort(key=lambda g: -g[0])
    return [sorted(g[1]) for g in out]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.relpath(f, os.getcwd())
             for f in glob.glob(os.path.join(here, "test_*.py"))]
    for g in groups(files, max(1, n)):
        print(" ".join(g))


if __name__ == "__main__":
    main()
