"""A million JSON records through one S3 stream into Parquet (snappy), read
back and counted by DuckDB (issue 11 §2).

The records are made and put inside the database (put_batch over
generate_series, 100,000 a call), so the test's time goes to conversion and
delivery, not to the client; the stream writes 16 MiB parts, a few dozen
Parquet files, which one DuckDB process reads.
"""

import pytest

from helpers import failed, flush
from test_s3 import s3  # noqa: F401  (the fixture)

N = 1000000
CHUNK = 100000


@pytest.fixture
def million_schema(db):
    db.execute("CREATE TABLE public.pq_million (id int8, customer text, amount float8, "
               "ts timestamptz)")
    yield
    db.execute("DROP TABLE IF EXISTS public.pq_million")


def test_a_million_records_into_parquet(db, s3, million_schema, read_parquet, tmp_path):
    b = s3.bucket()
    s3.stream("million", b, prefix="m/", error_output_prefix="e/!{firehose:error-output-type}/",
              buffer_size="16MB", buffer_interval="1 hour", max_concurrency=2,
              format={"type": "parquet", "schema": "public.pq_million",
                      "compression": "snappy", "block_size": "8MB"})
    for start in range(0, N, CHUNK):
        db.execute("""SELECT firehose.put_batch('million', array_agg(
                          json_build_object('id', g, 'customer', 'c' || g %% 100,
                                            'amount', g * 0.5,
                                            'ts', to_timestamp(1700000000 + g))::text))
                        FROM generate_series(%s, %s) g""", (start + 1, start + CHUNK))
    flush(db, "million", timeout="600s")
    assert failed(db, "million") == []

    keys = s3.keys(b, "m/")
    assert keys and all(k.endswith(".parquet") for k in keys), keys
    assert s3.keys(b, "e/") == []
    files = []
    for i, k in enumerate(keys):
        p = tmp_path / ("%d.parquet" % i)
        p.write_bytes(s3.get(b, k))
        files.append(p)
    out = read_parquet(*files, sql="SELECT count(*)::VARCHAR AS n, sum(id)::VARCHAR AS s, "
                                   "min(id)::VARCHAR AS lo, max(id)::VARCHAR AS hi, "
                                   "count(*) FILTER (WHERE amount * 2 <> id OR "
                                   "epoch(ts) <> 1700000000 + id OR "
                                   "customer <> 'c' || (id % 100)::VARCHAR)::VARCHAR AS bad "
                                   "FROM t")
    rows = [out[str(f)]["rows"][0] for f in files]
    assert sum(int(r["n"]) for r in rows) == N
    # every id once: the count is N and the ids sum to 1 + ... + N
    assert sum(int(r["s"]) for r in rows) == N * (N + 1) // 2
    assert min(int(r["lo"]) for r in rows) == 1 and max(int(r["hi"]) for r in rows) == N
    assert all(r["bad"] == "0" for r in rows)
    codecs = {m["compression"] for f in files for m in out[str(f)]["metadata"]}
    assert codecs == {"SNAPPY"}
    assert db.one("SELECT sum(records) FROM firehose.deliveries WHERE stream = 'million'") == N
