// Reads a Parquet file with DuckDB (@duckdb/node-api, installed by
// scripts/install-deps --tests into test/node/node_modules) and prints one
// JSON object: {"rows": [...], "schema": [...], "metadata": [...]}.
//   rows:     SELECT * FROM the file, each value as DuckDB's JSON form
//             (numbers, strings for DECIMAL/BIGINT/timestamps, arrays)
//   schema:   parquet_schema(file): one row per SchemaElement
//   metadata: parquet_metadata(file): one row per column chunk (row group,
//             codec, encodings, statistics, page offsets)
// An independent reader for test/test_parquet.py: nothing here knows how
// the file was written.
// Usage: node readparquet.mjs FILE.parquet [SQL]   (SQL reads "t" as the file)
import { DuckDBInstance } from '@duckdb/node-api';

const file = process.argv[2];
if (!file) {
  console.error('usage: node readparquet.mjs FILE.parquet [SQL]');
  process.exit(2);
}
const quoted = "'" + file.replaceAll("'", "''") + "'";
const instance = await DuckDBInstance.create(':memory:');
const db = await instance.connect();

async function json(sql) {
  const reader = await db.runAndReadAll(sql);
  return reader.getRowObjectsJson();
}

await db.run(`CREATE VIEW t AS SELECT * FROM read_parquet(${quoted})`);
const out = {
  rows: await json(process.argv[3] ?? 'SELECT * FROM t'),
  types: await json('DESCRIBE t'),
  schema: await json(`SELECT * FROM parquet_schema(${quoted})`),
  metadata: await json(`SELECT * FROM parquet_metadata(${quoted})`),
};
process.stdout.write(JSON.stringify(out) + '\n');
