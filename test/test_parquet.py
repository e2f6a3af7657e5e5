"""The Parquet writer (src/parquet_writer.c) read back by an independent reader.

test/unit/parquet_gen.c, a small driver of the writer, turns rows into a
file; DuckDB (test/node/readparquet.mjs) reads it back.  Every column type
of the writer, NULLs, unicode, big numerics, extreme integers and dates,
timestamps before and after 1970, bytes, arrays with NULL elements and empty
arrays, empty strings, each codec, dictionary on and off, data pages v1 and
v2, several pages and row groups: the values DuckDB reads must be the values
given, and the metadata (codec, encodings, field ids, statistics, page
kind) what was asked for.  No PostgreSQL is involved.
"""

import datetime
import decimal
import json
import math
import os
import random
import struct
import subprocess
import uuid

import pytest

decimal.getcontext().prec = 80  # 38 digits and more, exactly

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TEST_DIR)

# name, the driver's type, DuckDB's type
COLUMNS = [
    ("n", "int32", "INTEGER"),
    ("b", "boolean", "BOOLEAN"),
    ("i2", "int16", "SMALLINT"),
    ("i4", "int32", "INTEGER"),
    ("i8", "int64", "BIGINT"),
    ("f4", "float", "FLOAT"),
    ("f8", "double", "DOUBLE"),
    ("d9", "decimal:9:2", "DECIMAL(9,2)"),
    ("d18", "decimal:18:6", "DECIMAL(18,6)"),
    ("d38", "decimal:38:10", "DECIMAL(38,10)"),
    ("s", "string", "VARCHAR"),
    ("j", "json", "JSON"),
    ("by", "bytes", "BLOB"),
    ("dt", "date", "DATE"),
    ("ts", "timestamp", "TIMESTAMP WITH TIME ZONE"),
    ("u", "uuid", "UUID"),
    ("li", "int64[]", "BIGINT[]"),
    ("ls", "string[]", "VARCHAR[]"),
    ("ld", "decimal[]:20:3", "DECIMAL(20,3)[]"),
]

# every value in a form whose text DuckDB gives back exactly
QUERY = """SELECT n, b, i2, i4, i8::VARCHAR AS i8, f4::VARCHAR AS f4, f8::VARCHAR AS f8,
    d9::VARCHAR AS d9, d18::VARCHAR AS d18, d38::VARCHAR AS d38, s, j::VARCHAR AS j,
    hex("by") AS "by", (dt - DATE '1970-01-01')::VARCHAR AS dt, epoch_us(ts)::VARCHAR AS ts,
    u::VARCHAR AS u, li::VARCHAR[] AS li, ls, ld::VARCHAR[] AS ld
    FROM t ORDER BY n"""

STRINGS = ["", "a", "héllo wörld", "日本語のテキスト", "🦆 duck", "tab\there\nnewline",
           "quote \" and \\ backslash", "x" * 1000, "Ω" * 40, " leading space"]


@pytest.fixture(scope="module")
def parquet_gen(tmp_path_factory):
    """The driver, built from the writer's source with the system's compiler."""
    exe = tmp_path_factory.mktemp("parquet_gen") / "parquet_gen"
    subprocess.run([os.environ.get("CC", "cc"), "-std=c99", "-O2", "-Wall",
                    "-I", os.path.join(ROOT, "src"), "-o", str(exe),
                    os.path.join(ROOT, "test/unit/parquet_gen.c"),
                    os.path.join(ROOT, "src/parquet_writer.c"),
                    "-lsnappy", "-lz", "-lzstd", "-lm"], check=True)
    return str(exe)


def field(v):
    """A value in the driver's input: NULL, text as hex, or a list."""
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ",".join(field(x) for x in v) + "]"
    if isinstance(v, bytes):
        return "=" + v.hex()
    if isinstance(v, decimal.Decimal):
        v = format(v, "f")  # no exponent
    return "=" + str(v).encode().hex()


def write(gen, path, columns, rows, *options):
    """Writes rows (lists of driver values: str/int/bytes/list/None) to path."""
    text = "".join("\t".join(field(v) for v in r) + "\n" for r in rows)
    r = subprocess.run([gen, str(path), *options] + ["%s:%s" % (c[0], c[1]) for c in columns],
                       input=text.encode(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def dec(rng, precision, scale):
    digits = rng.choice([1, precision // 2, precision])
    whole = rng.randrange(10 ** digits)
    return (-1 if rng.random() < 0.4 else 1) * decimal.Decimal(whole).scaleb(-scale)


def make_rows(count, seed=11):
    """Rows of the driver's values and, beside them, what DuckDB must give back
    (through QUERY): both from the same Python values."""
    rng = random.Random(seed)
    rows, expect = [], []
    specials_f8 = [0.0, -0.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, 0.1]
    for n in range(count):
        def maybe(v):
            return None if rng.random() < 0.1 else v
        b = maybe(rng.random() < 0.5)
        i2 = maybe(rng.choice([-32768, 32767, 0, rng.randrange(-32768, 32768)]))
        i4 = maybe(rng.choice([-2**31, 2**31 - 1, rng.randrange(-2**31, 2**31), n]))
        i8 = maybe(rng.choice([-2**63, 2**63 - 1, rng.randrange(-2**63, 2**63)]))
        f4 = maybe(f32(rng.uniform(-1e30, 1e30)) if n % 3 else f32(rng.random()))
        f8 = maybe(specials_f8[n % len(specials_f8)] if n % 2 else rng.uniform(-1e300, 1e300))
        d9, d18, d38 = (maybe(dec(rng, p, s)) for p, s in ((9, 2), (18, 6), (38, 10)))
        if n == 1:
            d38 = decimal.Decimal("9" * 28 + "." + "9" * 10)  # the largest, both signs
        if n == 2:
            d38 = -decimal.Decimal("9" * 28 + "." + "9" * 10)
        s = maybe(STRINGS[n % len(STRINGS)] + ("" if n % 4 else str(n)))
        j = maybe(json.dumps({"k": n, "v": STRINGS[n % 5], "a": [1, None, True]},
                             ensure_ascii=False))
        by = maybe(bytes(rng.randrange(256) for _ in range(n % 7)))
        dt = maybe(rng.choice([-719162, 2932896, 0, rng.randrange(-719162, 2932896)]))
        ts = maybe(rng.choice([-62135596800000000, 253402300799999999, -1, 0,
                               rng.randrange(-2**50, 2**50)]))
        u = maybe(uuid.UUID(int=rng.getrandbits(128)))
        li = maybe([maybe(rng.randrange(-2**63, 2**63)) for _ in range(n % 4)])
        ls = maybe([maybe(STRINGS[(n + k) % len(STRINGS)][:20]) for k in range(n % 3)])
        ld = maybe([maybe(dec(rng, 20, 3)) for _ in range(n % 5)])

        rows.append([n, "true" if b else ("false" if b is False else None), i2, i4, i8,
                     None if f4 is None else repr(f4), None if f8 is None else repr(f8),
                     d9, d18, d38, s, j, by, dt, ts,
                     None if u is None else u.hex, li, ls, ld])
        expect.append(dict(n=n, b=b, i2=i2, i4=i4, i8=i8, f4=f4, f8=f8, d9=d9, d18=d18,
                           d38=d38, s=s, j=j, by=by, dt=dt, ts=ts, u=u, li=li, ls=ls, ld=ld))
    return rows, expect


def same_float(got, want, single):
    if want is None or got is None:
        return got is None and want is None
    g = float(got)
    if single:
        g = f32(g)
    if math.isnan(want):
        return math.isnan(g)
    return g == want and math.copysign(1, g) == math.copysign(1, want)


def check_rows(got_rows, expect):
    """Compares DuckDB's rows (QUERY) with the values given, column by column."""
    assert len(got_rows) == len(expect)
    for got, want in zip(got_rows, expect):
        where = "row %d" % want["n"]
        assert got["n"] == want["n"], where
        for k in ("b", "i2", "i4", "s", "j", "ls"):
            assert got[k] == want[k], (where, k, got[k], want[k])
        for k in ("i8", "dt", "ts"):
            assert got[k] == (None if want[k] is None else str(want[k])), (where, k)
        assert same_float(got["f4"], want["f4"], True), (where, "f4", got["f4"], want["f4"])
        assert same_float(got["f8"], want["f8"], False), (where, "f8", got["f8"], want["f8"])
        for k in ("d9", "d18", "d38"):
            g = None if got[k] is None else decimal.Decimal(got[k])
            assert g == want[k], (where, k, got[k], want[k])
        assert got["by"] == (None if want["by"] is None else want["by"].hex().upper()), where
        assert got["u"] == (None if want["u"] is None else str(want["u"])), where
        assert got["li"] == (None if want["li"] is None else
                             [None if x is None else str(x) for x in want["li"]]), where
        assert (None if got["ld"] is None else
                [None if x is None else decimal.Decimal(x) for x in got["ld"]]) == want["ld"], where


def check_field_ids(schema):
    """Field ids 1.. on the columns (the list's group), as the driver gives them."""
    ids = {e["name"]: e["field_id"] for e in schema}
    for i, c in enumerate(COLUMNS):
        assert ids[c[0]] == str(i + 1), (c[0], ids[c[0]])
    logical = {e["name"]: e["logical_type"] for e in schema}
    assert logical["ts"].startswith("TimestampType(isAdjustedToUTC=1, unit=TimeUnit(MILLIS=<null>, MICROS=MicroSeconds()")
    assert logical["u"] == "UUIDType()"
    assert logical["j"] == "JsonType()"
    assert logical["s"] == "StringType()"
    assert logical["li"] == "ListType()"


def page_header(path, offset):
    """(type, uncompressed_page_size, compressed_page_size) of the page at
    offset: the first three fields of its PageHeader, each an i32 in Thrift's
    compact encoding (0x15 = the next field, i32; then a zigzag varint)."""
    with open(path, "rb") as f:
        f.seek(int(offset))
        head = f.read(32)
    values, at = [], 0
    for _ in range(3):
        assert head[at] == 0x15, head
        at += 1
        v = shift = 0
        while True:
            v |= (head[at] & 0x7F) << shift
            shift += 7
            at += 1
            if not head[at - 1] & 0x80:
                break
        values.append((v >> 1) ^ -(v & 1))
    kind = {0: "DATA_PAGE", 2: "DICTIONARY_PAGE", 3: "DATA_PAGE_V2"}[values[0]]
    return kind, values[1], values[2]


def page_kind(path, offset):
    return page_header(path, offset)[0]


CODECS = {"none": "UNCOMPRESSED", "snappy": "SNAPPY", "gzip": "GZIP", "zstd": "ZSTD"}


def test_every_type_codec_dictionary_and_page_version(parquet_gen, read_parquet, tmp_path):
    """The same 400 rows in 16 files (4 codecs x dictionary on/off x pages v1/v2),
    in small pages and row groups, each read back equal by DuckDB, with the
    metadata asked for."""
    rows, expect = make_rows(400)
    files = {}
    for codec in CODECS:
        for dictionary in ("on", "off"):
            for version in ("1", "2"):
                path = tmp_path / ("t-%s-%s-v%s.parquet" % (codec, dictionary, version))
                write(parquet_gen, path, COLUMNS, rows, "--codec", codec, "--dict", dictionary,
                      "--version", version, "--page-size", "2048", "--block-size", "40000")
                files[str(path)] = (codec, dictionary, version)
    got = read_parquet(*files, sql=QUERY)

    for path, (codec, dictionary, version) in files.items():
        out = got[path]
        check_rows(out["rows"], expect)
        assert [(t["column_name"], t["column_type"]) for t in out["types"]] == \
            [(c[0], c[2]) for c in COLUMNS], path
        check_field_ids(out["schema"])

        meta = out["metadata"]
        groups = sorted({int(m["row_group_id"]) for m in meta})
        assert len(groups) >= 2, (path, "expected several row groups")
        assert sum(int(m["row_group_num_rows"]) for m in meta if m["column_id"] == "0") == 400
        for m in meta:
            col = m["path_in_schema"].split(",")[0]
            assert m["compression"] == CODECS[codec], (path, m)
            encodings = m["encodings"].split(", ")
            if dictionary == "on" and col != "b":
                assert "RLE_DICTIONARY" in encodings, (path, m)
                assert page_kind(path, m["dictionary_page_offset"]) == "DICTIONARY_PAGE"
            else:
                assert "RLE_DICTIONARY" not in encodings and m["dictionary_page_offset"] is None, \
                    (path, m)
            assert page_kind(path, m["data_page_offset"]) == \
                ("DATA_PAGE_V2" if version == "2" else "DATA_PAGE"), (path, m)

        # statistics: per row group, NULL counts and the min/max of i4 and i8
        first = 0
        for g in groups:
            chunk = {m["path_in_schema"]: m for m in meta if int(m["row_group_id"]) == g}
            count = int(chunk["n"]["row_group_num_rows"])
            part = expect[first:first + count]
            first += count
            for k in ("b", "i4", "s", "u", "ts"):
                assert int(chunk[k]["stats_null_count"]) == sum(r[k] is None for r in part), \
                    (path, g, k)
            for k in ("i4", "i8"):
                values = [r[k] for r in part if r[k] is not None]
                assert chunk[k]["stats_min_value"] == str(min(values)), (path, g, k)
                assert chunk[k]["stats_max_value"] == str(max(values)), (path, g, k)
        assert first == 400


def test_pages_row_groups_and_dictionary_fallback(parquet_gen, read_parquet, tmp_path):
    """50,000 rows in 8 KiB pages and 64 KiB row groups (compressed size): DuckDB counts and
    sums them all.  A column of all-distinct strings outgrows its dictionary,
    which stops at the page size (the rest of the chunk is PLAIN); a column of
    10 values stays dictionary-encoded."""
    columns = [("n", "int64", "BIGINT"), ("s", "string", "VARCHAR"), ("k", "string", "VARCHAR")]
    count = 50000
    rows = [[n, "distinct value %08d %s" % (n, "é" * (n % 5)), "k%d" % (n % 10)]
            for n in range(count)]
    path = tmp_path / "big.parquet"
    page = 8192
    write(parquet_gen, path, columns, rows, "--page-size", str(page), "--block-size",
          str(64 * 1024), "--codec", "zstd")
    sql = """SELECT count(*)::VARCHAR AS c, sum(n)::VARCHAR AS total, count(DISTINCT s) AS ds,
        min(s) AS mins, max(s) AS maxs, count(*) FILTER (WHERE k = 'k3') AS k3,
        count(*) FILTER (WHERE s = 'distinct value 00031337 éé') AS one FROM t"""
    out = read_parquet(path, sql=sql)[str(path)]
    assert out["rows"] == [{"c": str(count), "total": str(count * (count - 1) // 2),
                            "ds": str(count), "mins": "distinct value 00000000 ",
                            "maxs": "distinct value 00049999 éééé", "k3": str(count // 10),
                            "one": "1"}]
    meta = out["metadata"]
    assert len({m["row_group_id"] for m in meta}) >= 3
    for m in meta:
        assert m["dictionary_page_offset"] is not None, m
        kind, dict_bytes, _ = page_header(path, m["dictionary_page_offset"])
        assert kind == "DICTIONARY_PAGE"
        if m["path_in_schema"] == "s":
            # the dictionary stopped growing past the page size (plus the row
            # that crossed it), though the chunk holds far more distinct values
            assert page < dict_bytes <= page + 64, m
            assert int(m["num_values"]) * 24 > 4 * page, m
        if m["path_in_schema"] == "k":
            assert dict_bytes == 10 * (4 + 2), m  # k0..k9, PLAIN: length + bytes
