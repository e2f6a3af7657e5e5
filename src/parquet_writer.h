/*-------------------------------------------------------------------------
 *
 * parquet_writer.h
 *	  A small Parquet writer (parquet_writer.c): one flat schema of nullable
 *	  columns, each a scalar or a one-dimensional LIST of scalars, written
 *	  row by row into row groups and pages, with PLAIN or RLE_DICTIONARY
 *	  values, RLE/bit-packed hybrid levels, data pages v1 or v2, page
 *	  compression (none, snappy, gzip, zstd) and the Thrift compact footer
 *	  of the parquet-format specification
 *	  (https://github.com/apache/parquet-format, parquet.thrift).
 *
 * Debian 12 has no Parquet library for C, hence this file.  It is plain
 * C99 with no PostgreSQL header, so the unit test
 * (test/unit/parquet_test.c) builds it without a server.  It keeps no
 * global state and never aborts: every function returns 0 or -1, and after
 * -1 fh_pq_error() says why (a value that does not fit its column, a
 * misuse of the API, out of memory, a failed write).
 *
 * Use:
 *		FhPqColumn	cols[] = {{"id", FH_PQ_INT64}, {"name", FH_PQ_STRING}};
 *		FhPqOptions opts;
 *		FhPqWriter *w;
 *		char		err[FH_PQ_ERROR_LEN];
 *
 *		fh_pq_options_default(&opts);
 *		w = fh_pq_writer_create(cols, 2, &opts, write_fn, arg, err);
 *		for each row:
 *			fh_pq_int(w, 0, 42); fh_pq_bytes(w, 1, "x", 1);
 *			fh_pq_end_row(w);		(a column given no value is NULL)
 *		fh_pq_finish(w);			(the last row group and the footer)
 *		fh_pq_writer_free(w);
 *
 * The file goes out through write_fn as it is made: "PAR1", each row group
 * when it reaches block_size, then the footer.  A row group is held in
 * memory (compressed) until then.  A list column takes fh_pq_list_begin(),
 * its elements (fh_pq_null() for a NULL element), fh_pq_list_end().
 *
 *-------------------------------------------------------------------------
 */
#ifndef PARQUET_WRITER_H
#define PARQUET_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FH_PQ_ERROR_LEN		256
#define FH_PQ_MAX_DECIMAL_PRECISION 38	/* 16 bytes, as pg_parquet */

/* the column types: each names its physical and logical Parquet type */
typedef enum FhPqType
{
	FH_PQ_BOOLEAN,				/* BOOLEAN */
	FH_PQ_INT16,				/* INT32, INTEGER(16, signed) */
	FH_PQ_INT32,				/* INT32 */
	FH_PQ_INT64,				/* INT64 */
	FH_PQ_FLOAT,				/* FLOAT */
	FH_PQ_DOUBLE,				/* DOUBLE */
	FH_PQ_DECIMAL,				/* DECIMAL(precision, scale): INT32 up to 9
								 * digits, INT64 up to 18, else
								 * FIXED_LEN_BYTE_ARRAY of the fewest bytes */
	FH_PQ_STRING,				/* BYTE_ARRAY, STRING */
	FH_PQ_JSON,					/* BYTE_ARRAY, JSON */
	FH_PQ_BYTES,				/* BYTE_ARRAY */
	FH_PQ_DATE,					/* INT32, DATE: days since 1970-01-01 */
	FH_PQ_TIMESTAMP,			/* INT64, TIMESTAMP(MICROS, adjusted to
								 * UTC): microseconds since the epoch */
	FH_PQ_UUID					/* FIXED_LEN_BYTE_ARRAY(16), UUID */
} FhPqType;

typedef struct FhPqColumn
{
	const char *name;			/* copied by fh_pq_writer_create */
	FhPqType	type;
	int			precision;		/* FH_PQ_DECIMAL: 1..38 */
	int			scale;			/* FH_PQ_DECIMAL: 0..precision */
	bool		list;			/* a LIST of type (one dimension) */
	int			field_id;		/* written as the field id when >= 0 */
} FhPqColumn;

/* the values are parquet.thrift's CompressionCodec */
typedef enum FhPqCodec
{
	FH_PQ_UNCOMPRESSED = 0,
	FH_PQ_SNAPPY = 1,
	FH_PQ_GZIP = 2,
	FH_PQ_ZSTD = 6
} FhPqCodec;

typedef struct FhPqOptions
{
	FhPqCodec	codec;
	size_t		block_size;		/* a row group is cut when its data reaches
								 * this many bytes */
	size_t		page_size;		/* a page is cut when its values reach this
								 * many bytes (PLAIN size); also the largest
								 * dictionary before falling back to PLAIN */
	bool		dictionary;		/* RLE_DICTIONARY where it pays */
	int			writer_version; /* 1: data pages v1; 2: data pages v2 */
	const char *created_by;		/* the footer's created_by, or NULL */
} FhPqOptions;

/* receives the file's bytes in order; returns 0, or -1 to fail the writer */
typedef int (*FhPqWriteFn) (void *arg, const void *data, size_t len);

typedef struct FhPqWriter FhPqWriter;

extern void fh_pq_options_default(FhPqOptions *opts);
extern FhPqWriter *fh_pq_writer_create(const FhPqColumn *columns, int ncolumns,
									   const FhPqOptions *opts,
									   FhPqWriteFn write, void *arg,
									   char error[FH_PQ_ERROR_LEN]);
extern void fh_pq_writer_free(FhPqWriter *w);
extern const char *fh_pq_error(const FhPqWriter *w);

/*
 * Values, into column col of the current row (or, between list_begin and
 * list_end, as the list's next element).
 *	fh_pq_int:	 INT16, INT32, INT64, DATE (days), TIMESTAMP (microseconds),
 *				 DECIMAL (the unscaled value);
 *	fh_pq_double: FLOAT, DOUBLE;
 *	fh_pq_bytes: STRING, JSON, BYTES (any bytes), UUID (16 bytes);
 *	fh_pq_decimal: DECIMAL from its text ("-12.5"); more fraction digits
 *				 than the scale, or more digits than the precision, fail.
 * A value outside its column's range fails and leaves the row as it was.
 */
extern int	fh_pq_null(FhPqWriter *w, int col);
extern int	fh_pq_bool(FhPqWriter *w, int col, bool v);
extern int	fh_pq_int(FhPqWriter *w, int col, int64_t v);
extern int	fh_pq_double(FhPqWriter *w, int col, double v);
extern int	fh_pq_bytes(FhPqWriter *w, int col, const void *data, size_t len);
extern int	fh_pq_decimal(FhPqWriter *w, int col, const char *text);
extern int	fh_pq_list_begin(FhPqWriter *w, int col);
extern int	fh_pq_list_end(FhPqWriter *w, int col);

/* ends the row: columns without a value get NULL; may write a row group */
extern int	fh_pq_end_row(FhPqWriter *w);

/* drops the values given since the last fh_pq_end_row() */
extern void fh_pq_abandon_row(FhPqWriter *w);

/* writes the last row group and the footer; the writer is done after it */
extern int	fh_pq_finish(FhPqWriter *w);

extern int64_t fh_pq_rows(const FhPqWriter *w);

/*
 * The RLE/bit-packed hybrid encoding of n values of bit_width bits, as the
 * writer uses it for levels and dictionary indices (exposed for the unit
 * test).  Returns the encoded length, or 0 when out is too small.
 */
extern size_t fh_pq_rle_hybrid(const uint32_t *values, size_t n,
							   int bit_width, uint8_t *out, size_t outsize);

#endif							/* PARQUET_WRITER_H */
