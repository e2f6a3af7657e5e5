#!/usr/bin/env python3
"""Split the pytest files into groups of about equal running time, for test/run.

    test/groups.py N      prints N lines, each the test files of one group

test/run starts one PostgreSQL cluster per group and runs the groups side by
side.  Most of the suite's time is spent waiting (for a batch's age, a retry's
backoff, Splunk's acknowledgement timeout, a cluster restart, the S3 server),
so on two cores three groups finish far sooner than one.  A file stays whole
in one group: its tests may share fixtures and change their cluster
(restarts, ALTER SYSTEM).

The weights are seconds a file took (setup, call and teardown of its tests,
from pytest --durations=0) in a full run of test/run on the 2-core machine;
a file not listed counts DEFAULT.  They need not be exact: they only balance
the groups.  The first group gets the most weight (test/run prints its output
as it goes).
"""
import glob
import os
import sys

WEIGHTS = {
    "test_splunk.py": 183,
    "test_opensearch.py": 131,
    "test_postgres.py": 104,
    "test_presets.py": 103,
    "test_failures.py": 102,
    "test_crash_matrix.py": 102,
    "test_s3.py": 77,
    "test_security.py": 69,
    "test_redshift.py": 62,
    "test_lambda.py": 58,
    "test_faults.py": 58,
    "test_bounds.py": 55,
    "test_stress.py": 50,
    "test_worker.py": 50,
    "test_delivery.py": 46,
    "test_s3_partitioning.py": 27,
    "test_hostile.py": 25,
    "test_s3server.py": 25,
    "test_processors.py": 23,
    "test_exactset.py": 23,
    "test_flush_join.py": 21,
    "test_prepared.py": 19,
    "test_json_to_csv.py": 17,
    "test_connection_cache.py": 15,
    "test_unpack.py": 11,
    "test_parquet_s3.py": 11,
    "test_open_files.py": 11,
    "test_parquet_million.py": 9,
    "test_splunk_receiver.py": 9,
    "test_capture.py": 8,
    "test_receiver.py": 8,
    "test_tls.py": 6,
    "test_opensearch_receiver.py": 5,
    "test_parquet.py": 5,
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
