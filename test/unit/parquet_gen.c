/*-------------------------------------------------------------------------
 *
 * parquet_gen.c
 *	  Test driver of src/parquet_writer.c: writes the rows it reads from
 *	  standard input into a Parquet file, so that test/test_parquet.py can
 *	  read the file back with an independent reader (DuckDB).
 *
 * Usage: parquet_gen OUT.parquet [options] COLUMN...
 *	options: --codec none|snappy|gzip|zstd   --dict on|off   --version 1|2
 *			 --page-size BYTES   --block-size BYTES
 *	COLUMN:  name:type[:precision:scale], type one of boolean int16 int32
 *			 int64 float double decimal string json bytes date timestamp
 *			 uuid, with "[]" after the type for a list ("tags:string[]");
 *			 column i gets field id i.
 *
 * Input: one row a line, one field per column, separated by tabs:
 *	-			NULL
 *	=HEX		a value: the hex of its text (so any byte can be in it)
 *	[ITEM,...]	a list of items, each - or =HEX; [] is the empty list
 * A value's text: true/false; an integer (date: days, timestamp:
 * microseconds); a C floating-point number; a decimal ("-1.50"); the
 * bytes themselves (string, json, bytes); 32 hex digits (uuid).
 *
 * Exit status 0, or 1 with the writer's error on standard error (the line
 * number of the row that failed first).
 *
 *-------------------------------------------------------------------------
 */
#include "parquet_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const types[] = {
	"boolean", "int16", "int32", "int64", "float", "double", "decimal",
	"string", "json", "bytes", "date", "timestamp", "uuid", NULL
};

static int
write_file(void *arg, const void *data, size_t len)
{
	return fwrite(data, 1, len, (FILE *) arg) == len ? 0 : -1;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* decodes hex from s up to a byte in stop (or the end) into out; its length */
static long
unhex(const char *s, const char *stop, char *out, const char **end)
{
	long		n = 0;

	while (*s && !strchr(stop, *s))
	{
		int			hi = hexval(s[0]),
					lo = s[1] ? hexval(s[1]) : -1;

		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (char) (hi << 4 | lo);
		s += 2;
	}
	out[n] = '\0';
	*end = s;
	return n;
}

/* one value, its text in v[0..len) */
static int
put_value(FhPqWriter *w, int col, FhPqType type, const char *v, long len)
{
	switch (type)
	{
		case FH_PQ_BOOLEAN:
			return fh_pq_bool(w, col, strcmp(v, "true") == 0);
		case FH_PQ_FLOAT:
		case FH_PQ_DOUBLE:
			return fh_pq_double(w, col, strtod(v, NULL));
		case FH_PQ_DECIMAL:
			return fh_pq_decimal(w, col, v);
		case FH_PQ_STRING:
		case FH_PQ_JSON:
		case FH_PQ_BYTES:
			return fh_pq_bytes(w, col, v, (size_t) len);
		case FH_PQ_UUID:
			{
				char		b[17];
				const char *end;

				if (unhex(v, "", b, &end) != 16)
				{
					fprintf(stderr, "parquet_gen: bad uuid \"%s\"\n", v);
					exit(2);
				}
				return fh_pq_bytes(w, col, b, 16);
			}
		default:
			return fh_pq_int(w, col, strtoll(v, NULL, 10));
	}
}

int
main(int argc, char **argv)
{
	FhPqOptions opts;
	FhPqColumn	cols[64];
	int			ncols = 0;
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w;
	FILE	   *out;
	static char line[1 << 20];
	static char val[1 << 19];
	long		lineno = 0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: parquet_gen OUT.parquet [options] COLUMN...\n");
		return 2;
	}
	fh_pq_options_default(&opts);
	opts.created_by = "firehose parquet_gen";
	for (int i = 2; i < argc; i++)
	{
		const char *a = argv[i];

		if (strncmp(a, "--", 2) == 0 && i + 1 < argc)
		{
			const char *v = argv[++i];

			if (strcmp(a, "--codec") == 0)
				opts.codec = strcmp(v, "none") == 0 ? FH_PQ_UNCOMPRESSED :
					strcmp(v, "gzip") == 0 ? FH_PQ_GZIP :
					strcmp(v, "zstd") == 0 ? FH_PQ_ZSTD : FH_PQ_SNAPPY;
			else if (strcmp(a, "--dict") == 0)
				opts.dictionary = strcmp(v, "on") == 0;
			else if (strcmp(a, "--version") == 0)
				opts.writer_version = atoi(v);
			else if (strcmp(a, "--page-size") == 0)
				opts.page_size = strtoul(v, NULL, 10);
			else if (strcmp(a, "--block-size") == 0)
				opts.block_size = strtoul(v, NULL, 10);
			else
			{
				fprintf(stderr, "parquet_gen: unknown option %s\n", a);
				return 2;
			}
			continue;
		}
		else
		{
			char	   *spec = argv[i];	/* cut in place: names live on in argv */
			char	   *name = strtok(spec, ":");
			char	   *type = strtok(NULL, ":");
			char	   *p = strtok(NULL, ":");
			char	   *s = strtok(NULL, ":");
			size_t		tl;
			int			t;

			if (type == NULL || ncols == 64)
			{
				fprintf(stderr, "parquet_gen: bad column \"%s\"\n", a);
				return 2;
			}
			memset(&cols[ncols], 0, sizeof(FhPqColumn));
			tl = strlen(type);
			if (tl > 2 && strcmp(type + tl - 2, "[]") == 0)
			{
				cols[ncols].list = true;
				type[tl - 2] = '\0';
			}
			for (t = 0; types[t] && strcmp(types[t], type) != 0; t++)
				;
			if (types[t] == NULL)
			{
				fprintf(stderr, "parquet_gen: unknown type \"%s\"\n", type);
				return 2;
			}
			cols[ncols].name = name;
			cols[ncols].type = (FhPqType) t;
			cols[ncols].precision = p ? atoi(p) : 0;
			cols[ncols].scale = s ? atoi(s) : 0;
			cols[ncols].field_id = ncols + 1;
			ncols++;
		}
	}

	out = fopen(argv[1], "wb");
	if (out == NULL)
	{
		perror(argv[1]);
		return 2;
	}
	w = fh_pq_writer_create(cols, ncols, &opts, write_file, out, err);
	if (w == NULL)
	{
		fprintf(stderr, "parquet_gen: %s\n", err);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin))
	{
		char	   *f = line;
		int			col = 0;
		int			rc = 0;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		for (col = 0; col < ncols && rc == 0; col++)
		{
			const char *end = f;

			if (*f == '-')
			{
				rc = fh_pq_null(w, col);
				end = f + 1;
			}
			else if (*f == '=')
			{
				long		n = unhex(f + 1, "\t", val, &end);

				rc = n < 0 ? -1 : put_value(w, col, cols[col].type, val, n);
			}
			else if (*f == '[')
			{
				end = f + 1;
				rc = fh_pq_list_begin(w, col);
				while (rc == 0 && *end != ']' && *end)
				{
					if (*end == '-')
					{
						rc = fh_pq_null(w, col);
						end++;
					}
					else if (*end == '=')
					{
						long		n = unhex(end + 1, ",]", val, &end);

						rc = n < 0 ? -1 : put_value(w, col, cols[col].type, val, n);
					}
					else
						rc = -1;
					if (*end == ',')
						end++;
				}
				if (rc == 0 && *end == ']')
					end++;
				if (rc == 0)
					rc = fh_pq_list_end(w, col);
			}
			else
				rc = -1;
			if (rc == 0 && *end != '\t' && *end != '\0')
				rc = -1;
			f = (char *) (*end ? end + 1 : end);
		}
		if (rc == 0)
			rc = fh_pq_end_row(w);
		if (rc != 0)
		{
			fprintf(stderr, "parquet_gen: line %ld: %s\n", lineno,
					fh_pq_error(w)[0] ? fh_pq_error(w) : "malformed field");
			return 1;
		}
	}
	if (fh_pq_finish(w) != 0)
	{
		fprintf(stderr, "parquet_gen: %s\n", fh_pq_error(w));
		return 1;
	}
	fh_pq_writer_free(w);
	return fclose(out) == 0 ? 0 : 1;
}
