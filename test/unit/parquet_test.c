/*-------------------------------------------------------------------------
 *
 * parquet_test.c
 *	  Unit test of src/parquet_writer.c: whole tiny files byte for byte,
 *	  the RLE/bit-packed hybrid against the example of Encodings.md, the
 *	  encodings of values, and the writer's refusals.
 *
 * Expected bytes were worked out by hand from the parquet-format
 * specification (parquet.thrift field ids and types, Encodings.md) and
 * Thrift's compact protocol (a field header is (id delta << 4) | type,
 * integers are zigzag varints, a struct ends with 0x00); each line of an
 * expected array says which field it is.  The files are also read back by
 * DuckDB in test/test_parquet.py.
 *
 * Output: a FAIL line for each failing check, then "parquet: N of M checks
 * pass"; exit status 1 when any check failed.
 *
 *-------------------------------------------------------------------------
 */
#include "parquet_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_NAME "parquet"
#include "check.h"

/* the file in memory */
typedef struct Out
{
	uint8_t		data[65536];
	size_t		len;
} Out;

static int
write_mem(void *arg, const void *data, size_t len)
{
	Out		   *o = arg;

	if (o->len + len > sizeof(o->data))
		return -1;
	memcpy(o->data + o->len, data, len);
	o->len += len;
	return 0;
}

static int
write_fail(void *arg, const void *data, size_t len)
{
	(void) arg;
	(void) data;
	(void) len;
	return -1;
}

static void
hex(const uint8_t *p, size_t n, char *out, size_t size)
{
	size_t		k = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && k + 4 < size; i++)
		k += (size_t) snprintf(out + k, size - k, "%02x ", p[i]);
}

/* checks that got[0..n) is expected[0..n) */
static void
check_bytes(const char *what, const uint8_t *got, size_t gotlen,
			const uint8_t *expected, size_t n)
{
	char		e[2048],
				g[2048];
	int			ok = gotlen >= n && memcmp(got, expected, n) == 0;

	hex(expected, n, e, sizeof(e));
	hex(got, gotlen < n ? gotlen : n, g, sizeof(g));
	check(ok, what, ok ? NULL : e, ok ? NULL : g);
}

static FhPqOptions
plain_options(void)
{
	FhPqOptions o;

	fh_pq_options_default(&o);
	o.codec = FH_PQ_UNCOMPRESSED;
	o.dictionary = false;
	return o;
}

/*
 * One INT32 column "a" (field id 1), one row: 7.  Uncompressed, PLAIN,
 * data page v1.  The whole file.
 */
static void
test_tiny_file(void)
{
	static const uint8_t expected[] = {
		'P', 'A', 'R', '1',
		/* offset 4: PageHeader */
		0x15, 0x00,				/* 1: type DATA_PAGE (0) */
		0x15, 0x14,				/* 2: uncompressed_page_size 10 */
		0x15, 0x14,				/* 3: compressed_page_size 10 */
		0x2c,					/* 5: data_page_header */
		0x15, 0x02,				/* 1: num_values 1 */
		0x15, 0x00,				/* 2: encoding PLAIN */
		0x15, 0x06,				/* 3: definition_level_encoding RLE (3) */
		0x15, 0x06,				/* 4: repetition_level_encoding RLE */
		0x00, 0x00,				/* stops */
		/* offset 21: the page: definition levels, 4-byte length */
		0x02, 0x00, 0x00, 0x00,
		0x03, 0x01,				/* one bit-packed group: level 1 */
		0x07, 0x00, 0x00, 0x00, /* PLAIN INT32 7 */
		/* offset 31: FileMetaData */
		0x15, 0x02,				/* 1: version 1 */
		0x19, 0x2c,				/* 2: schema, list of 2 structs */
		0x48, 0x06, 's', 'c', 'h', 'e', 'm', 'a',	/* 4: name */
		0x15, 0x02,				/* 5: num_children 1 */
		0x00,
		0x15, 0x02,				/* 1: type INT32 */
		0x25, 0x02,				/* 3: repetition_type OPTIONAL */
		0x18, 0x01, 'a',		/* 4: name */
		0x55, 0x02,				/* 9: field_id 1 */
		0x00,
		0x16, 0x02,				/* 3: num_rows 1 */
		0x19, 0x1c,				/* 4: row_groups, list of 1 struct */
		0x19, 0x1c,				/* 1: columns, list of 1 struct */
		0x26, 0x08,				/* 2: file_offset 4 */
		0x1c,					/* 3: meta_data */
		0x15, 0x02,				/* 1: type INT32 */
		0x19, 0x25, 0x06, 0x00, /* 2: encodings [RLE, PLAIN] */
		0x19, 0x18, 0x01, 'a',	/* 3: path_in_schema ["a"] */
		0x15, 0x00,				/* 4: codec UNCOMPRESSED */
		0x16, 0x02,				/* 5: num_values 1 */
		0x16, 0x36,				/* 6: total_uncompressed_size 27 */
		0x16, 0x36,				/* 7: total_compressed_size 27 */
		0x26, 0x08,				/* 9: data_page_offset 4 */
		0x3c,					/* 12: statistics */
		0x36, 0x00,				/* 3: null_count 0 */
		0x28, 0x04, 0x07, 0x00, 0x00, 0x00, /* 5: max_value */
		0x18, 0x04, 0x07, 0x00, 0x00, 0x00, /* 6: min_value */
		0x00, 0x00, 0x00,		/* Statistics, ColumnMetaData, ColumnChunk */
		0x16, 0x36,				/* 2: total_byte_size 27 */
		0x16, 0x02,				/* 3: num_rows 1 */
		0x26, 0x08,				/* 5: file_offset 4 */
		0x16, 0x36,				/* 6: total_compressed_size 27 */
		0x14, 0x00,				/* 7: ordinal 0 (i16) */
		0x00,
		0x39, 0x1c,				/* 7: column_orders, list of 1 struct */
		0x1c, 0x00, 0x00,		/* 1: TYPE_ORDER {} */
		0x00,					/* FileMetaData's stop */
	};
	FhPqColumn	cols[] = {{"a", FH_PQ_INT32, 0, 0, false, 1}};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w = fh_pq_writer_create(cols, 1, &o, write_mem, out, err);
	size_t		footer = sizeof(expected) - 31;

	check(w != NULL, "create the tiny file's writer", "a writer", err);
	check(fh_pq_int(w, 0, 7) == 0, "tiny: value", "0", fh_pq_error(w));
	check(fh_pq_end_row(w) == 0, "tiny: end row", "0", fh_pq_error(w));
	check(fh_pq_finish(w) == 0, "tiny: finish", "0", fh_pq_error(w));
	check(fh_pq_rows(w) == 1, "tiny: rows", "1", NULL);
	check_bytes("tiny file: pages and footer", out->data, out->len,
				expected, sizeof(expected));
	{
		uint8_t		tail[8] = {(uint8_t) footer, (uint8_t) (footer >> 8), 0, 0,
		'P', 'A', 'R', '1'};

		check(out->len == sizeof(expected) + 8, "tiny file: length",
			  "the footer, its length and PAR1", NULL);
		if (out->len == sizeof(expected) + 8)
			check_bytes("tiny file: footer length and magic",
						out->data + sizeof(expected), 8, tail, 8);
	}
	fh_pq_writer_free(w);
	free(out);
}

/*
 * Dictionary encoding: a STRING column, rows "a", "b", "a": a dictionary
 * page of the two PLAIN values, then a v1 data page of RLE_DICTIONARY
 * indices 0 1 0 (bit width 1).  The column chunk, byte for byte.
 */
static void
test_dictionary(void)
{
	static const uint8_t expected[] = {
		'P', 'A', 'R', '1',
		/* the dictionary page's header */
		0x15, 0x04,				/* 1: type DICTIONARY_PAGE (2) */
		0x15, 0x14,				/* 2: uncompressed 10 */
		0x15, 0x14,				/* 3: compressed 10 */
		0x4c,					/* 7: dictionary_page_header */
		0x15, 0x04,				/* 1: num_values 2 */
		0x15, 0x00,				/* 2: encoding PLAIN */
		0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 'a',	/* PLAIN BYTE_ARRAY "a" */
		0x01, 0x00, 0x00, 0x00, 'b',
		/* the data page's header */
		0x15, 0x00,				/* 1: DATA_PAGE */
		0x15, 0x12,				/* 2: uncompressed 9 */
		0x15, 0x12,				/* 3: compressed 9 */
		0x2c,					/* 5: data_page_header */
		0x15, 0x06,				/* 1: num_values 3 */
		0x15, 0x10,				/* 2: encoding RLE_DICTIONARY (8) */
		0x15, 0x06, 0x15, 0x06, /* 3, 4: RLE levels */
		0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x03, 0x07, /* levels 1 1 1, bit-packed */
		0x01,					/* index bit width 1 */
		0x03, 0x02,				/* indices 0 1 0, bit-packed */
	};
	FhPqColumn	cols[] = {{"s", FH_PQ_STRING, 0, 0, false, -1}};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w;

	o.dictionary = true;
	w = fh_pq_writer_create(cols, 1, &o, write_mem, out, err);
	fh_pq_bytes(w, 0, "a", 1);
	fh_pq_end_row(w);
	fh_pq_bytes(w, 0, "b", 1);
	fh_pq_end_row(w);
	fh_pq_bytes(w, 0, "a", 1);
	check(fh_pq_end_row(w) == 0 && fh_pq_finish(w) == 0, "dictionary: write",
		  "0", fh_pq_error(w));
	check_bytes("dictionary page and RLE_DICTIONARY data page", out->data,
				out->len, expected, sizeof(expected));
	fh_pq_writer_free(w);
	free(out);
}

/*
 * Data page v2, a list column and booleans: levels without a length, the
 * header's num_nulls, num_rows and level lengths.  Column "l" is a list of
 * BOOLEAN; rows: [true, NULL, false], NULL, [].
 */
static void
test_v2_list(void)
{
	static const uint8_t expected[] = {
		'P', 'A', 'R', '1',
		0x15, 0x06,				/* 1: type DATA_PAGE_V2 (3) */
		0x15, 0x0c,				/* 2: uncompressed 6 */
		0x15, 0x0c,				/* 3: compressed 6 */
		0x5c,					/* 8: data_page_header_v2 */
		0x15, 0x0a,				/* 1: num_values 5 (levels) */
		0x15, 0x06,				/* 2: num_nulls 3 (the NULL element, the
								 * NULL list, the empty list) */
		0x15, 0x06,				/* 3: num_rows 3 */
		0x15, 0x00,				/* 4: encoding PLAIN */
		0x15, 0x06,				/* 5: definition_levels_byte_length 3 */
		0x15, 0x04,				/* 6: repetition_levels_byte_length 2 */
		0x12,					/* 7: is_compressed false */
		0x00, 0x00,
		0x03, 0x06,				/* repetition 0 1 1 0 0, bit width 1:
								 * 0b00110 */
		0x03, 0x3b, 0x01,		/* definition 3 2 3 0 1, bit width 2:
								 * 00 11 10 11, then 01 */
	};
	FhPqColumn	cols[] = {{"l", FH_PQ_BOOLEAN, 0, 0, true, 1}};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w;

	o.writer_version = 2;
	w = fh_pq_writer_create(cols, 1, &o, write_mem, out, err);
	check(fh_pq_bool(w, 0, true) < 0, "a list column refuses a bare value",
		  "-1", "0");
	fh_pq_list_begin(w, 0);
	fh_pq_bool(w, 0, true);
	fh_pq_null(w, 0);
	fh_pq_bool(w, 0, false);
	fh_pq_list_end(w, 0);
	fh_pq_end_row(w);
	fh_pq_null(w, 0);
	fh_pq_end_row(w);
	fh_pq_list_begin(w, 0);
	fh_pq_list_end(w, 0);
	check(fh_pq_end_row(w) == 0 && fh_pq_finish(w) == 0, "v2 list: write",
		  "0", fh_pq_error(w));
	check_bytes("data page v2 header and levels of a list", out->data,
				out->len, expected, sizeof(expected));
	/* then the values: PLAIN booleans true, false bit-packed: 0b01 */
	if (out->len > sizeof(expected))
		check(out->data[sizeof(expected)] == 0x01,
			  "PLAIN booleans are bit-packed LSB first", "01", NULL);
	fh_pq_writer_free(w);
	free(out);
}

/* Encodings.md's examples and runs */
static void
test_rle_hybrid(void)
{
	uint32_t	v[300];
	uint8_t		out[512];
	size_t		n;

	/* "bit-packing ... 0 to 7 with bit width 3": 10001000 11000110 11111010 */
	for (int i = 0; i < 8; i++)
		v[i] = (uint32_t) i;
	n = fh_pq_rle_hybrid(v, 8, 3, out, sizeof(out));
	check_bytes("bit-packed 0..7, width 3 (Encodings.md)", out, n,
				(const uint8_t[]) {0x03, 0x88, 0xc6, 0xfa}, 4);
	check(n == 4, "bit-packed 0..7: length", "4", NULL);

	/* a run of 300 fives, width 3: RLE header varint(600), one value byte */
	for (int i = 0; i < 300; i++)
		v[i] = 5;
	n = fh_pq_rle_hybrid(v, 300, 3, out, sizeof(out));
	check_bytes("RLE run of 300", out, n,
				(const uint8_t[]) {0xd8, 0x04, 0x05}, 3);
	check(n == 3, "RLE run of 300: length", "3", NULL);

	/* a run's value takes ceil(width / 8) bytes, little-endian */
	for (int i = 0; i < 8; i++)
		v[i] = 0x1234;
	n = fh_pq_rle_hybrid(v, 8, 13, out, sizeof(out));
	check_bytes("RLE run, width 13", out, n,
				(const uint8_t[]) {0x10, 0x34, 0x12}, 3);

	/* 8 mixed values, then a run of 10 from the group boundary */
	for (int i = 0; i < 18; i++)
		v[i] = 1;
	v[1] = v[7] = 0;
	n = fh_pq_rle_hybrid(v, 18, 1, out, sizeof(out));
	check_bytes("bit-packed group then run", out, n,
				(const uint8_t[]) {0x03, 0x7d, 0x14, 0x01}, 4);
	check(n == 4, "bit-packed group then run: length", "4", NULL);

	/* a run that starts inside a group stays bit-packed: 1 0 then 9 ones */
	for (int i = 0; i < 11; i++)
		v[i] = 1;
	v[1] = 0;
	n = fh_pq_rle_hybrid(v, 11, 1, out, sizeof(out));
	check_bytes("run inside a group", out, n,
				(const uint8_t[]) {0x05, 0xfd, 0x07}, 3);

	/* 17 alternating values of width 1: three groups, the last padded */
	for (int i = 0; i < 17; i++)
		v[i] = (uint32_t) (i & 1);
	n = fh_pq_rle_hybrid(v, 17, 1, out, sizeof(out));
	check_bytes("three bit-packed groups", out, n,
				(const uint8_t[]) {0x07, 0xaa, 0xaa, 0x00}, 4);

	check(fh_pq_rle_hybrid(v, 17, 1, out, 2) == 0,
		  "too small an output buffer", "0", NULL);
}

/* finds needle in the file; its offset or -1 */
static long
find(const Out *o, const uint8_t *needle, size_t n)
{
	for (size_t i = 0; i + n <= o->len; i++)
		if (memcmp(o->data + i, needle, n) == 0)
			return (long) i;
	return -1;
}

/* DECIMAL in INT32, INT64 and FIXED_LEN_BYTE_ARRAY, from text */
static void
test_decimal(void)
{
	FhPqColumn	cols[] = {
		{"d9", FH_PQ_DECIMAL, 9, 2, false, 1},
		{"d18", FH_PQ_DECIMAL, 18, 0, false, 2},
		{"d38", FH_PQ_DECIMAL, 38, 5, false, 3},
		{"d20", FH_PQ_DECIMAL, 20, 2, false, 4},
	};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w = fh_pq_writer_create(cols, 4, &o, write_mem, out, err);

	check(fh_pq_decimal(w, 0, "-1234567.8") == 0, "decimal(9,2) -1234567.8",
		  "0", fh_pq_error(w));
	check(fh_pq_decimal(w, 1, "999999999999999999") == 0,
		  "decimal(18) 18 nines", "0", fh_pq_error(w));
	check(fh_pq_decimal(w, 2, "-1") == 0, "decimal(38,5) -1", "0", fh_pq_error(w));
	check(fh_pq_decimal(w, 3, "+000123456789012345678.9") == 0,
		  "decimal(20,2) with leading zeros", "0", fh_pq_error(w));
	check(fh_pq_end_row(w) == 0, "decimal: end row", "0", fh_pq_error(w));

	/* refusals, each leaving the row untouched */
	check(fh_pq_decimal(w, 0, "1.234") < 0, "decimal(9,2) refuses 3 fraction digits",
		  "-1", NULL);
	check(strstr(fh_pq_error(w), "fraction digits") != NULL,
		  "the fraction digits error", "... fraction digits ...", fh_pq_error(w));
	check(fh_pq_decimal(w, 0, "12345678") < 0, "decimal(9,2) refuses 10 digits",
		  "-1", NULL);
	check(fh_pq_decimal(w, 0, "1e5") < 0, "decimal refuses an exponent", "-1", NULL);
	check(fh_pq_decimal(w, 0, "") < 0, "decimal refuses an empty string", "-1", NULL);
	check(fh_pq_decimal(w, 0, "-") < 0, "decimal refuses a lone sign", "-1", NULL);
	check(fh_pq_decimal(w, 2, "1234567890123456789012345678901234") < 0,
		  "decimal(38,5) refuses 39 digits", "-1", NULL);
	check(fh_pq_decimal(w, 1, "-999999999999999999") == 0,
		  "decimal(18) -18 nines", "0", fh_pq_error(w));
	check(fh_pq_int(w, 0, 1000000000) < 0, "decimal(9) refuses a 10-digit unscaled int",
		  "-1", NULL);
	check(fh_pq_int(w, 2, -2) == 0, "decimal(38) from an int", "0", fh_pq_error(w));
	check(fh_pq_end_row(w) == 0 && fh_pq_finish(w) == 0, "decimal: finish",
		  "0", fh_pq_error(w));

	/* -123456780 as INT32 LE */
	check(find(out, (const uint8_t[]) {0xf4, 0x32, 0xa4, 0xf8}, 4) > 0,
		  "decimal(9,2) -1234567.8 is INT32 -123456780", "f4 32 a4 f8", NULL);
	/* 999999999999999999 = 0x0DE0B6B3A763FFFF as INT64 LE */
	check(find(out, (const uint8_t[]) {0xff, 0xff, 0x63, 0xa7, 0xb3, 0xb6, 0xe0, 0x0d}, 8) > 0,
		  "decimal(18) is INT64", "ff ff 63 a7 b3 b6 e0 0d", NULL);
	/* -1 scaled by 10^5 = -100000 in 16 bytes big-endian: ...fffe7960 */
	check(find(out, (const uint8_t[]) {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x79, 0x60}, 16) > 0,
		  "decimal(38,5) -1 is 16 bytes big-endian two's complement",
		  "ff .. fe 79 60", NULL);
	/* decimal(20) takes 9 bytes: 12345678901234567890 = 0x00AB54A98CEB1F0AD2 */
	check(find(out, (const uint8_t[]) {0x00, 0xab, 0x54, 0xa9, 0x8c, 0xeb,
			0x1f, 0x0a, 0xd2}, 9) > 0,
		  "decimal(20,2) is 9 bytes big-endian", "00 ab 54 a9 8c eb 1f 0a d2", NULL);
	/* and the schema says FIXED_LEN_BYTE_ARRAY (7) of 9 bytes: type, type_length */
	check(find(out, (const uint8_t[]) {0x15, 0x0e, 0x15, 0x12, 0x15, 0x02}, 6) > 0,
		  "decimal(20) schema: FIXED_LEN_BYTE_ARRAY, type_length 9, OPTIONAL",
		  "15 0e 15 12 15 02", NULL);
	fh_pq_writer_free(w);
	free(out);
}

/* values that do not fit, misuse, and what a refused row leaves */
static void
test_refusals(void)
{
	FhPqColumn	cols[] = {
		{"i", FH_PQ_INT16, 0, 0, false, 1},
		{"f", FH_PQ_FLOAT, 0, 0, false, 2},
		{"u", FH_PQ_UUID, 0, 0, false, 3},
		{"s", FH_PQ_STRING, 0, 0, false, 4},
	};
	FhPqColumn	bad[] = {{"d", FH_PQ_DECIMAL, 39, 0, false, 1}};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w;

	check(fh_pq_writer_create(bad, 1, &o, write_mem, out, err) == NULL,
		  "decimal(39) is refused", "NULL", NULL);
	check(strstr(err, "precision") != NULL, "decimal(39): the message",
		  "... precision ...", err);
	o.writer_version = 3;
	check(fh_pq_writer_create(cols, 4, &o, write_mem, out, err) == NULL,
		  "writer version 3 is refused", "NULL", NULL);
	o.writer_version = 1;
	check(fh_pq_writer_create(cols, 0, &o, write_mem, out, err) == NULL,
		  "no columns is refused", "NULL", NULL);
	check(fh_pq_writer_create(cols, 4, &o, write_fail, out, err) == NULL,
		  "a failing write fails the writer", "NULL", NULL);

	w = fh_pq_writer_create(cols, 4, &o, write_mem, out, err);
	check(fh_pq_int(w, 0, 40000) < 0, "int16 refuses 40000", "-1", NULL);
	check(strstr(fh_pq_error(w), "out of range") != NULL, "int16: the message",
		  "... out of range ...", fh_pq_error(w));
	check(fh_pq_double(w, 1, 1e300) < 0, "float refuses 1e300", "-1", NULL);
	check(fh_pq_bytes(w, 2, "abc", 3) < 0, "uuid refuses 3 bytes", "-1", NULL);
	check(fh_pq_int(w, 3, 1) < 0, "string refuses an integer", "-1", NULL);
	check(fh_pq_list_begin(w, 3) < 0, "a scalar column has no list", "-1", NULL);
	check(fh_pq_int(w, 9, 1) < 0, "no column 9", "-1", NULL);
	check(fh_pq_int(w, 0, -32768) == 0, "int16 takes -32768", "0", fh_pq_error(w));
	check(fh_pq_int(w, 0, 1) < 0, "a second value in a row is refused", "-1", NULL);
	check(fh_pq_end_row(w) == 0, "row 1", "0", fh_pq_error(w));

	/* a row given up half way leaves nothing behind */
	check(fh_pq_int(w, 0, 12345) == 0 && fh_pq_bytes(w, 3, "gone", 4) == 0,
		  "row 2, to be abandoned", "0", fh_pq_error(w));
	fh_pq_abandon_row(w);
	check(fh_pq_bytes(w, 3, "kept", 4) == 0, "row 2 again", "0", fh_pq_error(w));
	check(fh_pq_end_row(w) == 0 && fh_pq_finish(w) == 0, "finish", "0",
		  fh_pq_error(w));
	check(fh_pq_rows(w) == 2, "two rows", "2", NULL);
	check(find(out, (const uint8_t *) "gone", 4) < 0,
		  "the abandoned value is not in the file", "absent", "present");
	check(find(out, (const uint8_t *) "kept", 4) > 0,
		  "the row's new value is", "present", "absent");
	/* int16 column: values -32768 and NULL: the page holds one INT32 */
	check(find(out, (const uint8_t[]) {0x39, 0x30, 0x00, 0x00}, 4) < 0,
		  "the abandoned 12345 is not in the file", "absent", "present");
	check(fh_pq_int(w, 0, 1) < 0, "no value after finish", "-1", NULL);
	fh_pq_writer_free(w);
	free(out);
}

/*
 * Pages and row groups: with a small page size a column chunk has many
 * pages, with a small block size the file many row groups, and the
 * dictionary falls back to PLAIN when it outgrows the page size.
 */
static void
test_sizes(void)
{
	FhPqColumn	cols[] = {{"n", FH_PQ_INT64, 0, 0, false, 1}};
	FhPqOptions o = plain_options();
	Out		   *out = calloc(1, sizeof(Out));
	char		err[FH_PQ_ERROR_LEN];
	FhPqWriter *w;
	int			pages = 0;

	o.page_size = 800;			/* 100 INT64 */
	o.block_size = 4000;
	w = fh_pq_writer_create(cols, 1, &o, write_mem, out, err);
	for (int i = 0; i < 1000; i++)
	{
		fh_pq_int(w, 0, i);
		fh_pq_end_row(w);
	}
	check(fh_pq_finish(w) == 0, "sizes: finish", "0", fh_pq_error(w));
	/* each v1 PLAIN data page header ends 15 00 15 06 15 06 00 00 */
	for (size_t i = 0; i + 8 <= out->len; i++)
		if (memcmp(out->data + i, (const uint8_t[]) {0x15, 0x00, 0x15, 0x06,
					0x15, 0x06, 0x00, 0x00}, 8) == 0)
			pages++;
	check(pages >= 9 && pages <= 11, "1000 INT64 in pages of 800 bytes: about 10 pages",
		  "9..11", NULL);
	{
		/* num_rows of FileMetaData 1000 (zigzag 2000 = d0 0f) then the row
		 * groups' list header: 0x19, (count << 4) | 12 */
		long		at = find(out, (const uint8_t[]) {0x16, 0xd0, 0x0f, 0x19}, 4);
		int			groups = at > 0 ? out->data[at + 4] >> 4 : -1;

		check(groups >= 2 && groups <= 3, "1000 INT64 in blocks of 4000 bytes: 2 or 3 row groups",
			  "2..3", NULL);
	}
	fh_pq_writer_free(w);
	free(out);
}

int
main(void)
{
	test_tiny_file();
	test_dictionary();
	test_v2_list();
	test_rle_hybrid();
	test_decimal();
	test_refusals();
	test_sizes();
	printf("parquet: %d of %d checks pass\n", checks_run - checks_failed, checks_run);
	return checks_failed ? 1 : 0;
}
