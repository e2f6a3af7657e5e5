// Reads Parquet files with DuckDB (@duckdb/node-api, installed into
// test/node/node_modules by scripts/install-deps --tests) and prints one
// JSON object, for each file given:
//   {"FILE": {"rows": [...], "types": [...], "schema": [...], "metadata": [...]}}
//   rows:     the query's rows (default SELECT * FROM t; t is the file), each
//             value in DuckDB's JSON form (BIGINT and DECIMAL as strings)
//   types:    DESCRIBE t: the DuckDB type each column was read as
//   schema:   parquet_schema(file): one row per SchemaElement
//   metadata: parquet_metadata(file): one row per column chunk (row group,
//             codec, encodings, statistics, page offsets)
// An independent reader for the tests (test/test_parquet.py): nothing here
// knows how the files were written.  One process reads them all, since
// starting DuckDB costs seconds on a loaded machine.
// Usage: node readparquet.mjs [--sql QUERY] FILE.parquet...
import { DuckDBInstance } from '@duckdb/node-api';

const args = process.argv.slice(2);
let query = 'SELECT * FROM t';
if (args[0] === '--sql') {
  query = args[1];
  args.splice(0, 2);
}
if (args.length === 0) {
  console.error('usage: node readparquet.mjs [--sql QUERY] FILE.parquet...');
  process.exit(2);
}
const instance = await DuckDBInstance.create(':memory:');
const db = await instance.connect();

async function json(sql) {
  const reader = await db.runAndReadAll(sql);
  return reader.getRowObjectsJson();
}

const out = {};
for (const file of args) {
  const quoted = "'" + file.replaceAll("'", "''") + "'";
  await db.run(`CREATE OR REPLACE VIEW t AS SELECT * FROM read_parquet(${quoted})`);
  out[file] = {
    rows: await json(query),
    types: await json('DESCRIBE t'),
    schema: await json(`SELECT * FROM parquet_schema(${quoted})`),
    metadata: await json(`SELECT * FROM parquet_metadata(${quoted})`),
  };
}
process.stdout.write(JSON.stringify(out) + '\n');
