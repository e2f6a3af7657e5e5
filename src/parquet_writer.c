/*-------------------------------------------------------------------------
 *
 * parquet_writer.c
 *	  A small Parquet writer, from the parquet-format specification
 *	  (https://github.com/apache/parquet-format: Encodings.md,
 *	  parquet.thrift, LogicalTypes.md); the interface is in
 *	  parquet_writer.h.
 *
 * Layout of the file it writes:
 *		"PAR1"
 *		row group: for each column, a column chunk:
 *			[dictionary page: PLAIN values]
 *			data pages (v1 or v2): repetition levels, definition levels,
 *			values (PLAIN or RLE_DICTIONARY indices)
 *		... more row groups ...
 *		FileMetaData (Thrift compact protocol), its length (4 bytes LE), "PAR1"
 *
 * Every column is OPTIONAL, so NULLs are definition levels (max 1).  A
 * list column is the three-level LIST of LogicalTypes.md:
 *		optional group name (LIST) { repeated group list {
 *			optional <type> element; } }
 * with max definition level 3 (NULL list 0, empty list 1, NULL element 2,
 * element 3) and max repetition level 1 (0 starts a row's list).
 *
 * Values are kept per column for the current page; at a row boundary a
 * page whose values reach page_size is encoded, compressed and appended to
 * its column's chunk buffer, and when the row group reaches block_size the
 * chunks are written out one after another.  Pages end only at row
 * boundaries, as v2 pages must (a row's list never spans pages).
 *
 * Dictionary encoding: each column chunk keeps a hash table of its
 * distinct values, whose PLAIN bytes are the dictionary page.  When the
 * dictionary outgrows page_size the current page is closed and the rest of
 * the chunk is PLAIN (what parquet-mr does); the next row group starts a
 * new dictionary.  Booleans are always PLAIN.
 *
 * Statistics: each column chunk has its null count, and min_value and
 * max_value for the types whose order is plain (signed integers, floats,
 * and the UTF-8 / bytes types, compared as unsigned bytes), with
 * column_orders saying TYPE_ORDER.  They are taken from each page as it
 * is closed, so a row dropped by fh_pq_abandon_row leaves no trace in them
 * (its new values stay in the dictionary page, referenced by no index).
 *
 *-------------------------------------------------------------------------
 */
#include "parquet_writer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

/* parquet.thrift's enums, as far as we write them */
enum
{
	PT_BOOLEAN = 0, PT_INT32 = 1, PT_INT64 = 2, PT_FLOAT = 4, PT_DOUBLE = 5,
	PT_BYTE_ARRAY = 6, PT_FIXED = 7
};
enum
{
	ENC_PLAIN = 0, ENC_RLE = 3, ENC_RLE_DICTIONARY = 8
};
enum
{
	PAGE_DATA = 0, PAGE_DICTIONARY = 2, PAGE_DATA_V2 = 3
};
enum
{
	CT_UTF8 = 0, CT_LIST = 3, CT_DECIMAL = 5, CT_DATE = 6,
	CT_TIMESTAMP_MICROS = 10, CT_INT_16 = 16, CT_JSON = 19
};
enum
{
	REP_REQUIRED = 0, REP_OPTIONAL = 1, REP_REPEATED = 2
};

/* Thrift compact protocol field types */
enum
{
	TT_TRUE = 1, TT_FALSE = 2, TT_BYTE = 3, TT_I16 = 4, TT_I32 = 5,
	TT_I64 = 6, TT_BINARY = 8, TT_LIST = 9, TT_STRUCT = 12
};

#define MAX_STAT_BYTES 64		/* longer byte-array min/max are left out */

/* a growable byte buffer; a failed allocation sets failed */
typedef struct Buf
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} Buf;

typedef struct Column
{
	FhPqColumn	spec;			/* name is our own copy */
	int			physical;		/* PT_* */
	int			type_length;	/* PT_FIXED: bytes */
	int			max_def;
	int			max_rep;

	/* the current page */
	Buf			values;			/* PLAIN values (booleans one byte each) */
	Buf			indices;		/* dictionary indices, uint32_t each */
	Buf			def;			/* definition levels, one byte each */
	Buf			rep;			/* repetition levels, one byte each */
	int64_t		page_rows;
	bool		page_dict;		/* this page's values are indices */

	/* where the current row began, for fh_pq_abandon_row */
	size_t		mark_values;
	size_t		mark_indices;
	size_t		mark_levels;

	/* the current row */
	bool		row_done;		/* the row has its value */
	bool		in_list;
	int			list_len;

	/* the current column chunk */
	Buf			chunk;			/* its data pages, headers and all */
	int64_t		chunk_values;	/* levels, NULLs included */
	int64_t		chunk_nulls;
	int64_t		chunk_uncompressed; /* data pages, headers included */
	bool		used_plain;
	bool		used_dict;
	bool		dict_on;		/* new values go to the dictionary */
	Buf			dict;			/* the dictionary's PLAIN values */
	Buf			dict_offsets;	/* size_t offset in dict of each entry */
	int32_t    *slots;			/* hash table: entry + 1, 0 free */
	size_t		nslots;
	uint32_t	ndict;

	/* statistics of the chunk */
	bool		has_minmax;
	bool		stats_off;		/* a byte array was too long */
	Buf			min;
	Buf			max;
} Column;

struct FhPqWriter
{
	FhPqOptions opts;
	FhPqWriteFn write;
	void	   *arg;
	Column	   *cols;
	int			ncols;
	int64_t		offset;			/* bytes written so far */
	int64_t		rows;			/* rows in the file */
	int64_t		rg_rows;		/* rows in the current row group */
	int			nrowgroups;
	Buf			rowgroups;		/* the footer's RowGroup structs */
	Buf			scratch;		/* page assembly */
	Buf			scratch2;		/* compressed bytes */
	bool		dead;			/* a write or allocation failed */
	bool		finished;
	char		error[FH_PQ_ERROR_LEN];
};

#ifdef __GNUC__
static int	fail(FhPqWriter *w, const char *fmt,...) __attribute__((format(printf, 2, 3)));
#endif

/* sets the writer's error message; returns -1 */
static int
fail(FhPqWriter *w, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- byte buffers ---- */

static bool
buf_reserve(Buf *b, size_t more)
{
	size_t		cap;
	uint8_t    *p;

	if (b->failed)
		return false;
	if (b->len + more <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
	{
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static void
buf_put(Buf *b, const void *data, size_t len)
{
	if (len == 0 || !buf_reserve(b, len))
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void
buf_byte(Buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

static void
buf_le(Buf *b, uint64_t v, int n)
{
	uint8_t		tmp[8];

	for (int i = 0; i < n; i++)
		tmp[i] = (uint8_t) (v >> (8 * i));
	buf_put(b, tmp, n);
}

static void
buf_varint(Buf *b, uint64_t v)
{
	while (v >= 0x80)
	{
		buf_byte(b, (uint8_t) (v | 0x80));
		v >>= 7;
	}
	buf_byte(b, (uint8_t) v);
}

static void
buf_free(Buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- Thrift compact protocol (thrift's doc/specs/thrift-compact-protocol.md) ---- */

typedef struct Thrift
{
	Buf		   *b;
	int			depth;
	int16_t		last[16];		/* last field id of each open struct */
} Thrift;

static void
tw_field(Thrift *t, int16_t id, int type)
{
	int			delta = id - t->last[t->depth];

	if (delta > 0 && delta <= 15)
		buf_byte(t->b, (uint8_t) ((delta << 4) | type));
	else
	{
		buf_byte(t->b, (uint8_t) type);
		buf_varint(t->b, ((uint32_t) id << 1) ^ (uint32_t) (id >> 15));
	}
	t->last[t->depth] = id;
}

static void
tw_zigzag(Thrift *t, int64_t v)
{
	buf_varint(t->b, ((uint64_t) v << 1) ^ (uint64_t) (v >> 63));
}

static void
tw_i32(Thrift *t, int16_t id, int32_t v)
{
	tw_field(t, id, TT_I32);
	tw_zigzag(t, v);
}

static void
tw_i64(Thrift *t, int16_t id, int64_t v)
{
	tw_field(t, id, TT_I64);
	tw_zigzag(t, v);
}

static void
tw_bool(Thrift *t, int16_t id, bool v)
{
	tw_field(t, id, v ? TT_TRUE : TT_FALSE);
}

static void
tw_binary_value(Thrift *t, const void *data, size_t len)
{
	buf_varint(t->b, len);
	buf_put(t->b, data, len);
}

static void
tw_binary(Thrift *t, int16_t id, const void *data, size_t len)
{
	tw_field(t, id, TT_BINARY);
	tw_binary_value(t, data, len);
}

static void
tw_list(Thrift *t, int16_t id, int elem_type, int size)
{
	tw_field(t, id, TT_LIST);
	if (size < 15)
		buf_byte(t->b, (uint8_t) ((size << 4) | elem_type));
	else
	{
		buf_byte(t->b, (uint8_t) (0xf0 | elem_type));
		buf_varint(t->b, (uint64_t) size);
	}
}

/* opens a struct: a field (id > 0) or a list element (id 0) */
static void
tw_begin(Thrift *t, int16_t id)
{
	if (id > 0)
		tw_field(t, id, TT_STRUCT);
	t->last[++t->depth] = 0;
}

static void
tw_end(Thrift *t)
{
	buf_byte(t->b, 0);			/* the stop field */
	t->depth--;
}

/* an empty struct as a field: the members of unions such as LogicalType */
static void
tw_empty(Thrift *t, int16_t id)
{
	tw_begin(t, id);
	tw_end(t);
}

/* ---- RLE / bit-packed hybrid (Encodings.md) ---- */

static int
bit_width(uint32_t max)
{
	int			n = 0;

	while (max)
		n++, max >>= 1;
	return n;
}

/* value i of an array of 1-byte (levels) or 4-byte (indices) numbers */
static inline uint32_t
get_value(const uint8_t *v, int size, size_t i)
{
	uint32_t	x;

	if (size == 1)
		return v[i];
	memcpy(&x, v + 4 * i, 4);
	return x;
}

/*
 * Appends the hybrid encoding of n values of bw bits (1..32) to out: a run
 * of 8 or more equal values becomes an RLE run, the rest bit-packed groups
 * of 8 (the last group padded with zeros: readers stop at the count they
 * were given).
 */
static void
rle_hybrid(Buf *out, const uint8_t *v, int size, size_t n, int bw)
{
	size_t		i = 0;
	int			vbytes = (bw + 7) / 8;

	while (i < n)
	{
		uint32_t	x = get_value(v, size, i);
		size_t		run = 1;

		while (i + run < n && get_value(v, size, i + run) == x)
			run++;
		if (run >= 8)
		{
			buf_varint(out, (uint64_t) run << 1);
			buf_le(out, x, vbytes);
			i += run;
			continue;
		}

		/*
		 * Bit-packed groups until a long run starts at a group boundary or
		 * the values end.  The group count goes first, so pack into a
		 * temporary place: at most 63 groups keep the header one byte.
		 */
		{
			size_t		start = i;
			size_t		groups = 0;
			uint8_t		header;

			do
			{
				i += 8;
				groups++;
				if (i >= n)
					break;
				x = get_value(v, size, i);
				run = 1;
				while (i + run < n && run < 8 && get_value(v, size, i + run) == x)
					run++;
			} while (run < 8 && groups < 63);
			header = (uint8_t) ((groups << 1) | 1);
			buf_byte(out, header);
			{
				uint64_t	acc = 0;
				int			nbits = 0;

				for (size_t k = start; k < start + groups * 8; k++)
				{
					uint64_t	val = k < n ? get_value(v, size, k) : 0;

					acc |= val << nbits;
					nbits += bw;
					while (nbits >= 8)
					{
						buf_byte(out, (uint8_t) acc);
						acc >>= 8;
						nbits -= 8;
					}
				}
			}
			if (i > n)
				i = n;
		}
	}
}

/* ---- compression ---- */

/* appends in[0..len) compressed with the writer's codec to out */
static int
compress_into(FhPqWriter *w, const uint8_t *in, size_t len, Buf *out)
{
	switch (w->opts.codec)
	{
		case FH_PQ_UNCOMPRESSED:
			buf_put(out, in, len);
			return 0;
		case FH_PQ_SNAPPY:
			{
				size_t		n = snappy_max_compressed_length(len);

				if (!buf_reserve(out, n))
					return 0;
				if (snappy_compress((const char *) in, len,
									(char *) out->data + out->len, &n) != SNAPPY_OK)
					return fail(w, "snappy compression failed");
				out->len += n;
				return 0;
			}
		case FH_PQ_GZIP:
			{
				z_stream	zs;
				int			rc;

				memset(&zs, 0, sizeof(zs));
				/* windowBits 15 + 16: the gzip wrapper Parquet's GZIP means */
				if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16,
								 8, Z_DEFAULT_STRATEGY) != Z_OK)
					return fail(w, "gzip compression failed to start");
				if (!buf_reserve(out, deflateBound(&zs, len)))
				{
					deflateEnd(&zs);
					return 0;
				}
				zs.next_in = (Bytef *) in;
				zs.avail_in = (uInt) len;
				zs.next_out = out->data + out->len;
				zs.avail_out = (uInt) (out->cap - out->len);
				rc = deflate(&zs, Z_FINISH);
				out->len += zs.total_out;
				deflateEnd(&zs);
				if (rc != Z_STREAM_END)
					return fail(w, "gzip compression failed");
				return 0;
			}
		case FH_PQ_ZSTD:
			{
				size_t		n = ZSTD_compressBound(len);

				if (!buf_reserve(out, n))
					return 0;
				n = ZSTD_compress(out->data + out->len, n, in, len, ZSTD_CLEVEL_DEFAULT);
				if (ZSTD_isError(n))
					return fail(w, "zstd compression failed: %s", ZSTD_getErrorName(n));
				out->len += n;
				return 0;
			}
	}
	return fail(w, "unknown codec %d", (int) w->opts.codec);
}

/* ---- statistics ---- */

static bool
has_order(const Column *c)
{
	switch (c->spec.type)
	{
		case FH_PQ_BOOLEAN:
		case FH_PQ_UUID:
			return false;
		case FH_PQ_DECIMAL:
			return c->physical != PT_FIXED;
		default:
			return true;
	}
}

/* <0, 0, >0 as PLAIN value a sorts before, with, after b in c's order */
static int
compare_plain(const Column *c, const uint8_t *a, size_t alen,
			  const uint8_t *b, size_t blen)
{
	switch (c->physical)
	{
		case PT_INT32:
			{
				int32_t		x,
							y;

				memcpy(&x, a, 4);
				memcpy(&y, b, 4);
				return (x > y) - (x < y);
			}
		case PT_INT64:
			{
				int64_t		x,
							y;

				memcpy(&x, a, 8);
				memcpy(&y, b, 8);
				return (x > y) - (x < y);
			}
		case PT_FLOAT:
			{
				float		x,
							y;

				memcpy(&x, a, 4);
				memcpy(&y, b, 4);
				return (x > y) - (x < y);
			}
		case PT_DOUBLE:
			{
				double		x,
							y;

				memcpy(&x, a, 8);
				memcpy(&y, b, 8);
				return (x > y) - (x < y);
			}
		default:
			{
				/* an empty value's buffer may be NULL: no memcmp then */
				int			r = alen && blen ? memcmp(a, b, alen < blen ? alen : blen) : 0;

				return r ? r : (alen > blen) - (alen < blen);
			}
	}
}

/*
 * Widens the chunk's min/max with a value: value is in host order, which
 * is little-endian on every platform we build for (the PLAIN encoding
 * below checks that).
 */
static void
update_stats(Column *c, const uint8_t *value, size_t len)
{
	if (!has_order(c) || c->stats_off)
		return;
	if (c->physical == PT_FLOAT || c->physical == PT_DOUBLE)
	{
		double		d;

		if (c->physical == PT_FLOAT)
		{
			float		f;

			memcpy(&f, value, 4);
			d = f;
		}
		else
			memcpy(&d, value, 8);
		if (isnan(d))
			return;				/* NaN has no place in the order */
	}
	if (len > MAX_STAT_BYTES)
	{
		c->stats_off = true;
		return;
	}
	if (!c->has_minmax)
	{
		buf_put(&c->min, value, len);
		buf_put(&c->max, value, len);
		c->has_minmax = true;
		return;
	}
	if (compare_plain(c, value, len, c->min.data, c->min.len) < 0)
	{
		c->min.len = 0;
		buf_put(&c->min, value, len);
	}
	if (compare_plain(c, value, len, c->max.data, c->max.len) > 0)
	{
		c->max.len = 0;
		buf_put(&c->max, value, len);
	}
}

/* ---- dictionary ---- */

static const uint8_t *dict_entry(const Column *c, uint32_t i, size_t *len);

/* widens the chunk's min/max with the values of the current page */
static void
page_stats(Column *c)
{
	if (!has_order(c))
		return;
	if (c->indices.len)
	{
		for (size_t i = 0; i < c->indices.len / 4; i++)
		{
			uint32_t	idx;
			size_t		len;
			const uint8_t *p;

			memcpy(&idx, c->indices.data + 4 * i, 4);
			p = dict_entry(c, idx, &len);
			update_stats(c, p, len);
		}
	}
	else
	{
		size_t		width = c->physical == PT_INT64 || c->physical == PT_DOUBLE ? 8 : 4;

		for (size_t off = 0; off < c->values.len;)
		{
			size_t		len = width;

			if (c->physical == PT_BYTE_ARRAY)
			{
				const uint8_t *p = c->values.data + off;

				len = (size_t) p[0] | (size_t) p[1] << 8 |
					(size_t) p[2] << 16 | (size_t) p[3] << 24;
				off += 4;
			}
			update_stats(c, c->values.data + off, len);
			off += len;
		}
	}
}

static uint64_t
hash_bytes(const uint8_t *p, size_t len)
{
	uint64_t	h = UINT64_C(1469598103934665603);	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211);
	return h;
}

/* the bytes of dictionary entry i (a byte array's without its length) */
static const uint8_t *
dict_entry(const Column *c, uint32_t i, size_t *len)
{
	size_t		off;
	const uint8_t *p;

	memcpy(&off, c->dict_offsets.data + i * sizeof(size_t), sizeof(size_t));
	p = c->dict.data + off;
	if (c->physical == PT_BYTE_ARRAY)
	{
		uint32_t	n = (uint32_t) p[0] | (uint32_t) p[1] << 8 |
			(uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;

		*len = n;
		return p + 4;
	}
	*len = c->physical == PT_FIXED ? (size_t) c->type_length :
		(c->physical == PT_INT64 || c->physical == PT_DOUBLE) ? 8 : 4;
	return p;
}

static bool
dict_grow(Column *c)
{
	size_t		n = c->nslots ? c->nslots * 2 : 1024;
	int32_t    *slots = calloc(n, sizeof(int32_t));

	if (slots == NULL)
		return false;
	for (uint32_t i = 0; i < c->ndict; i++)
	{
		size_t		len;
		const uint8_t *p = dict_entry(c, i, &len);
		size_t		s = hash_bytes(p, len) & (n - 1);

		while (slots[s])
			s = (s + 1) & (n - 1);
		slots[s] = (int32_t) i + 1;
	}
	free(c->slots);
	c->slots = slots;
	c->nslots = n;
	return true;
}

/* the index of a value in c's dictionary, added if new; -1: no memory */
static int64_t
dict_index(Column *c, const uint8_t *value, size_t len)
{
	size_t		s;
	size_t		off;

	if (c->ndict * 2 >= c->nslots && !dict_grow(c))
		return -1;
	s = hash_bytes(value, len) & (c->nslots - 1);
	while (c->slots[s])
	{
		uint32_t	i = (uint32_t) c->slots[s] - 1;
		size_t		elen;
		const uint8_t *e = dict_entry(c, i, &elen);

		if (elen == len && memcmp(e, value, len) == 0)
			return i;
		s = (s + 1) & (c->nslots - 1);
	}
	off = c->dict.len;
	if (c->physical == PT_BYTE_ARRAY)
		buf_le(&c->dict, len, 4);
	buf_put(&c->dict, value, len);
	buf_put(&c->dict_offsets, &off, sizeof(off));
	if (c->dict.failed || c->dict_offsets.failed)
		return -1;
	c->slots[s] = (int32_t) c->ndict + 1;
	return c->ndict++;
}

/* ---- values ---- */

/*
 * Appends one level pair and, when def is the column's maximum, the value
 * (its PLAIN bytes without a byte array's length) to the current page.
 */
static int
add_entry(FhPqWriter *w, Column *c, int rep, int def,
		  const uint8_t *value, size_t len)
{
	buf_byte(&c->rep, (uint8_t) rep);
	buf_byte(&c->def, (uint8_t) def);
	if (def == c->max_def)
	{
		if (c->dict_on)
		{
			int64_t		idx = dict_index(c, value, len);
			uint32_t	u = (uint32_t) idx;

			if (idx < 0)
			{
				w->dead = true;
				return fail(w, "out of memory");
			}
			buf_put(&c->indices, &u, 4);
		}
		else
		{
			if (c->physical == PT_BYTE_ARRAY)
				buf_le(&c->values, len, 4);
			buf_put(&c->values, value, len);
		}
	}
	if (c->rep.failed || c->def.failed || c->values.failed || c->indices.failed)
	{
		w->dead = true;
		return fail(w, "out of memory");
	}
	return 0;
}

static int
check_target(FhPqWriter *w, int col)
{
	Column	   *c;

	if (w->dead || w->finished)
		return fail(w, "the writer can take no more values%s",
					w->dead ? " after an error" : "");
	if (col < 0 || col >= w->ncols)
		return fail(w, "no column %d", col);
	c = &w->cols[col];
	if (c->row_done)
		return fail(w, "column \"%s\" already has a value in this row",
					c->spec.name);
	if (c->spec.list && !c->in_list)
		return fail(w, "column \"%s\" is a list: begin the list first",
					c->spec.name);
	return 0;
}

/* adds a non-NULL scalar, the list's element when a list is open */
static int
add_value(FhPqWriter *w, int col, const uint8_t *value, size_t len)
{
	Column	   *c = &w->cols[col];

	if (c->in_list)
		return add_entry(w, c, c->list_len++ ? 1 : 0, c->max_def, value, len);
	if (add_entry(w, c, 0, c->max_def, value, len) < 0)
		return -1;
	c->row_done = true;
	return 0;
}

int
fh_pq_null(FhPqWriter *w, int col)
{
	Column	   *c;

	if (w->dead || w->finished || col < 0 || col >= w->ncols ||
		w->cols[col].row_done)
		return check_target(w, col);
	c = &w->cols[col];
	if (c->in_list)
		return add_entry(w, c, c->list_len++ ? 1 : 0, 2, NULL, 0);
	if (add_entry(w, c, 0, 0, NULL, 0) < 0)
		return -1;
	c->row_done = true;
	return 0;
}

static const char *const type_names[] = {
	"boolean", "int16", "int32", "int64", "float", "double", "decimal",
	"string", "json", "bytes", "date", "timestamp", "uuid"
};

static int
wrong_type(FhPqWriter *w, Column *c, const char *given)
{
	return fail(w, "column \"%s\" of type %s cannot take %s",
				c->spec.name, type_names[c->spec.type], given);
}

int
fh_pq_bool(FhPqWriter *w, int col, bool v)
{
	uint8_t		b = v ? 1 : 0;

	if (check_target(w, col) < 0)
		return -1;
	if (w->cols[col].spec.type != FH_PQ_BOOLEAN)
		return wrong_type(w, &w->cols[col], "a boolean");
	return add_value(w, col, &b, 1);
}

/* 10^n for n <= 18 */
static int64_t
pow10_i64(int n)
{
	int64_t		r = 1;

	while (n-- > 0)
		r *= 10;
	return r;
}

/* two's complement big-endian of v in n bytes (n <= 16) */
static void
int_to_be(int64_t v, uint8_t *out, int n)
{
	for (int i = n - 1; i >= 0; i--)
	{
		out[i] = (uint8_t) v;
		v >>= 8;				/* arithmetic: sign-extends */
	}
}

int
fh_pq_int(FhPqWriter *w, int col, int64_t v)
{
	Column	   *c;
	uint8_t		b[16];
	int32_t		i32 = (int32_t) v;

	if (check_target(w, col) < 0)
		return -1;
	c = &w->cols[col];
	switch (c->spec.type)
	{
		case FH_PQ_INT16:
			if (v < INT16_MIN || v > INT16_MAX)
				return fail(w, "value %lld is out of range for column \"%s\" of type int16",
							(long long) v, c->spec.name);
			break;
		case FH_PQ_INT32:
		case FH_PQ_DATE:
			if (v < INT32_MIN || v > INT32_MAX)
				return fail(w, "value %lld is out of range for column \"%s\" of type %s",
							(long long) v, c->spec.name, type_names[c->spec.type]);
			break;
		case FH_PQ_INT64:
		case FH_PQ_TIMESTAMP:
			break;
		case FH_PQ_DECIMAL:
			if (c->spec.precision <= 18 &&
				(v >= pow10_i64(c->spec.precision) ||
				 v <= -pow10_i64(c->spec.precision)))
				return fail(w, "unscaled value %lld has more than %d digits for column \"%s\"",
							(long long) v, c->spec.precision, c->spec.name);
			if (c->physical == PT_FIXED)
			{
				int_to_be(v, b, c->type_length);
				return add_value(w, col, b, (size_t) c->type_length);
			}
			break;
		default:
			return wrong_type(w, c, "an integer");
	}
	if (c->physical == PT_INT32)
	{
		memcpy(b, &i32, 4);
		return add_value(w, col, b, 4);
	}
	memcpy(b, &v, 8);
	return add_value(w, col, b, 8);
}

int
fh_pq_double(FhPqWriter *w, int col, double v)
{
	Column	   *c;

	if (check_target(w, col) < 0)
		return -1;
	c = &w->cols[col];
	if (c->spec.type == FH_PQ_FLOAT)
	{
		float		f = (float) v;

		if (isinf(f) && !isinf(v))
			return fail(w, "value %g is out of range for column \"%s\" of type float",
						v, c->spec.name);
		return add_value(w, col, (const uint8_t *) &f, 4);
	}
	if (c->spec.type == FH_PQ_DOUBLE)
		return add_value(w, col, (const uint8_t *) &v, 8);
	return wrong_type(w, c, "a floating-point number");
}

int
fh_pq_bytes(FhPqWriter *w, int col, const void *data, size_t len)
{
	Column	   *c;

	if (check_target(w, col) < 0)
		return -1;
	c = &w->cols[col];
	if (c->spec.type == FH_PQ_UUID)
	{
		if (len != 16)
			return fail(w, "a uuid is 16 bytes, not %zu (column \"%s\")",
						len, c->spec.name);
	}
	else if (c->physical != PT_BYTE_ARRAY)
		return wrong_type(w, c, "bytes");
	if (len > INT32_MAX)
		return fail(w, "value of %zu bytes is too long for column \"%s\"",
					len, c->spec.name);
	return add_value(w, col, data, len);
}

/*
 * DECIMAL from text: [+-]digits[.digits], at most scale fraction digits
 * and precision digits in all.  The unscaled value is built as 16 bytes of
 * big-endian two's complement (38 digits need 127 bits), multiplying by
 * ten byte by byte, then cut to the column's width.
 */
int
fh_pq_decimal(FhPqWriter *w, int col, const char *text)
{
	Column	   *c;
	uint8_t		mag[16] = {0};
	const char *p = text;
	bool		neg = false;
	bool		dot = false;
	int			digits = 0;
	int			frac = 0;
	int			leading = 1;

	if (check_target(w, col) < 0)
		return -1;
	c = &w->cols[col];
	if (c->spec.type != FH_PQ_DECIMAL)
		return wrong_type(w, c, "a decimal");
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p == '\0' || (*p == '.' && p[1] == '\0'))
		return fail(w, "invalid decimal \"%s\" for column \"%s\"", text, c->spec.name);
	for (int step = 0; step < 2; step++)
	{
		for (; *p; p++)
		{
			if (*p == '.' && !dot)
			{
				dot = true;
				continue;
			}
			if (*p < '0' || *p > '9')
				return fail(w, "invalid decimal \"%s\" for column \"%s\"",
							text, c->spec.name);
			if (dot)
				frac++;
			if (leading && *p == '0' && !dot)
				continue;		/* leading zeros are not digits */
			leading = 0;
			digits++;
			if (frac > c->spec.scale)
				return fail(w, "decimal \"%s\" has more than %d fraction digits for column \"%s\"",
							text, c->spec.scale, c->spec.name);
			{
				unsigned	carry = (unsigned) (*p - '0');

				for (int i = 15; i >= 0; i--)
				{
					unsigned	v = mag[i] * 10u + carry;

					mag[i] = (uint8_t) v;
					carry = v >> 8;
				}
			}
		}
		/* then pad the fraction to the scale with zeros */
		if (step == 0)
		{
			static const char zeros[] = "00000000000000000000000000000000000000";

			p = zeros + (sizeof(zeros) - 1) - (c->spec.scale - frac);
			dot = true;
		}
	}
	if (digits > c->spec.precision)
		return fail(w, "decimal \"%s\" has more than %d digits for column \"%s\" (numeric(%d,%d))",
					text, c->spec.precision, c->spec.name,
					c->spec.precision, c->spec.scale);
	if (neg)
	{
		unsigned	carry = 1;

		for (int i = 15; i >= 0; i--)
		{
			unsigned	v = (uint8_t) ~mag[i] + carry;

			mag[i] = (uint8_t) v;
			carry = v >> 8;
		}
	}
	if (c->physical == PT_FIXED)
		return add_value(w, col, mag + 16 - c->type_length, (size_t) c->type_length);
	{
		int64_t		v = 0;

		for (int i = 8; i < 16; i++)
			v = (int64_t) ((uint64_t) v << 8 | mag[i]);
		return fh_pq_int(w, col, v);
	}
}

int
fh_pq_list_begin(FhPqWriter *w, int col)
{
	Column	   *c;

	if (w->dead || w->finished || col < 0 || col >= w->ncols)
		return check_target(w, col);
	c = &w->cols[col];
	if (!c->spec.list)
		return fail(w, "column \"%s\" is not a list", c->spec.name);
	if (c->row_done || c->in_list)
		return fail(w, "column \"%s\" already has a value in this row",
					c->spec.name);
	c->in_list = true;
	c->list_len = 0;
	return 0;
}

int
fh_pq_list_end(FhPqWriter *w, int col)
{
	Column	   *c;

	if (w->dead || w->finished || col < 0 || col >= w->ncols)
		return check_target(w, col);
	c = &w->cols[col];
	if (!c->in_list)
		return fail(w, "column \"%s\" has no list begun", c->spec.name);
	c->in_list = false;
	c->row_done = true;
	if (c->list_len == 0)
		return add_entry(w, c, 0, 1, NULL, 0);	/* the empty list */
	return 0;
}

/* ---- pages, chunks, row groups ---- */

static int
emit(FhPqWriter *w, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (w->write(w->arg, data, len) != 0)
	{
		w->dead = true;
		return fail(w, "writing the parquet file failed");
	}
	w->offset += (int64_t) len;
	return 0;
}

/* levels of a v1 page: 4-byte length, then the hybrid encoding */
static void
put_levels(Buf *out, const Buf *levels, int max, bool with_length)
{
	size_t		at = out->len;

	if (with_length)
		buf_le(out, 0, 4);
	rle_hybrid(out, levels->data, 1, levels->len, bit_width((uint32_t) max));
	if (with_length && !out->failed)
	{
		uint32_t	n = (uint32_t) (out->len - at - 4);

		for (int i = 0; i < 4; i++)
			out->data[at + i] = (uint8_t) (n >> (8 * i));
	}
}

/* the values of the current page, encoded (uncompressed) */
static void
put_values(Column *c, Buf *out)
{
	if (c->page_dict)
	{
		int			bw = bit_width(c->ndict - 1);

		/* width 0 would do for one entry; some readers mishandle it */
		if (bw == 0)
			bw = 1;
		buf_byte(out, (uint8_t) bw);
		rle_hybrid(out, c->indices.data, 4, c->indices.len / 4, bw);
	}
	else if (c->physical == PT_BOOLEAN)
	{
		/* PLAIN booleans are bit-packed, least significant bit first */
		uint8_t		byte = 0;
		size_t		i;

		for (i = 0; i < c->values.len; i++)
		{
			byte |= (uint8_t) (c->values.data[i] << (i % 8));
			if (i % 8 == 7)
			{
				buf_byte(out, byte);
				byte = 0;
			}
		}
		if (i % 8)
			buf_byte(out, byte);
	}
	else
		buf_put(out, c->values.data, c->values.len);
}

/* encodes, compresses and appends the current page to the chunk */
static int
close_page(FhPqWriter *w, Column *c)
{
	Buf		   *page = &w->scratch;
	Buf		   *comp = &w->scratch2;
	Buf			header = {0};
	Thrift		t = {&header, 0, {0}};
	int64_t		nulls = 0;
	size_t		levels_len = 0;
	size_t		rep_len = 0;
	size_t		uncompressed;
	bool		v2 = w->opts.writer_version == 2;
	int			encoding;

	if (c->def.len == 0)
		return 0;
	for (size_t i = 0; i < c->def.len; i++)
		nulls += c->def.data[i] != c->max_def;

	/* an all-NULL page has no index to encode: PLAIN (nothing) then */
	c->page_dict = c->indices.len > 0;
	page_stats(c);
	encoding = c->page_dict ? ENC_RLE_DICTIONARY : ENC_PLAIN;

	page->len = 0;
	comp->len = 0;
	if (c->max_rep > 0)
		put_levels(page, &c->rep, c->max_rep, !v2);
	rep_len = page->len;
	put_levels(page, &c->def, c->max_def, !v2);
	levels_len = page->len;
	put_values(c, page);
	if (page->failed)
	{
		w->dead = true;
		return fail(w, "out of memory");
	}
	uncompressed = page->len;
	if (v2)
	{
		/* v2: levels stay uncompressed, ahead of the compressed values */
		buf_put(comp, page->data, levels_len);
		if (compress_into(w, page->data + levels_len, page->len - levels_len, comp) < 0)
			return -1;
	}
	else if (compress_into(w, page->data, page->len, comp) < 0)
		return -1;

	/* PageHeader */
	tw_i32(&t, 1, v2 ? PAGE_DATA_V2 : PAGE_DATA);
	tw_i32(&t, 2, (int32_t) uncompressed);
	tw_i32(&t, 3, (int32_t) comp->len);
	if (!v2)
	{
		tw_begin(&t, 5);		/* DataPageHeader */
		tw_i32(&t, 1, (int32_t) c->def.len);
		tw_i32(&t, 2, encoding);
		tw_i32(&t, 3, ENC_RLE);
		tw_i32(&t, 4, ENC_RLE);
		tw_end(&t);
	}
	else
	{
		tw_begin(&t, 8);		/* DataPageHeaderV2 */
		tw_i32(&t, 1, (int32_t) c->def.len);
		tw_i32(&t, 2, (int32_t) nulls);
		tw_i32(&t, 3, (int32_t) c->page_rows);
		tw_i32(&t, 4, encoding);
		tw_i32(&t, 5, (int32_t) (levels_len - rep_len));
		tw_i32(&t, 6, (int32_t) rep_len);
		tw_bool(&t, 7, w->opts.codec != FH_PQ_UNCOMPRESSED);
		tw_end(&t);
	}
	buf_byte(&header, 0);		/* PageHeader's stop */

	buf_put(&c->chunk, header.data, header.len);
	buf_put(&c->chunk, comp->data, comp->len);
	if (header.failed || comp->failed || c->chunk.failed)
	{
		buf_free(&header);
		w->dead = true;
		return fail(w, "out of memory");
	}
	c->chunk_uncompressed += (int64_t) (header.len + uncompressed);
	c->chunk_values += (int64_t) c->def.len;
	c->chunk_nulls += nulls;
	if (c->page_dict)
		c->used_dict = true;
	else
		c->used_plain = true;
	buf_free(&header);

	c->values.len = c->indices.len = c->def.len = c->rep.len = 0;
	c->mark_values = c->mark_indices = c->mark_levels = 0;
	c->page_rows = 0;
	return 0;
}

/* the size of the page's values as PLAIN, which page_size is measured in */
static size_t
page_bytes(const Column *c)
{
	size_t		n = c->values.len;

	if (c->indices.len)
	{
		/* average entry size times the indices */
		size_t		count = c->indices.len / 4;

		n += c->ndict ? (c->dict.len / c->ndict) * count : 0;
	}
	return n + c->def.len / 4;	/* levels, roughly */
}

/* writes one column chunk at the current offset and its ColumnChunk struct */
static int
write_chunk(FhPqWriter *w, Column *c, Thrift *t, int64_t *uncompressed,
			int64_t *compressed)
{
	int64_t		start = w->offset;
	int64_t		dict_offset = -1;
	int64_t		data_offset;
	int64_t		total_uncompressed;
	int			nenc = 1;

	if (close_page(w, c) < 0)
		return -1;
	total_uncompressed = c->chunk_uncompressed;
	if (c->used_dict)
	{
		Buf			header = {0};
		Thrift		ht = {&header, 0, {0}};

		w->scratch2.len = 0;
		if (compress_into(w, c->dict.data, c->dict.len, &w->scratch2) < 0)
			return -1;
		tw_i32(&ht, 1, PAGE_DICTIONARY);
		tw_i32(&ht, 2, (int32_t) c->dict.len);
		tw_i32(&ht, 3, (int32_t) w->scratch2.len);
		tw_begin(&ht, 7);		/* DictionaryPageHeader */
		tw_i32(&ht, 1, (int32_t) c->ndict);
		tw_i32(&ht, 2, ENC_PLAIN);
		tw_end(&ht);
		buf_byte(&header, 0);
		if (header.failed || w->scratch2.failed)
		{
			buf_free(&header);
			w->dead = true;
			return fail(w, "out of memory");
		}
		dict_offset = w->offset;
		total_uncompressed += (int64_t) (header.len + c->dict.len);
		if (emit(w, header.data, header.len) < 0 ||
			emit(w, w->scratch2.data, w->scratch2.len) < 0)
		{
			buf_free(&header);
			return -1;
		}
		buf_free(&header);
	}
	data_offset = w->offset;
	if (emit(w, c->chunk.data, c->chunk.len) < 0)
		return -1;

	/* ColumnChunk */
	tw_begin(t, 0);
	tw_i64(t, 2, start);
	tw_begin(t, 3);				/* ColumnMetaData */
	tw_i32(t, 1, c->physical);
	nenc += c->used_plain || c->used_dict;
	nenc += c->used_dict;
	tw_list(t, 2, TT_I32, nenc);
	tw_zigzag(t, ENC_RLE);		/* the levels */
	if (c->used_plain || c->used_dict)
		tw_zigzag(t, ENC_PLAIN);	/* values, or the dictionary page */
	if (c->used_dict)
		tw_zigzag(t, ENC_RLE_DICTIONARY);
	tw_list(t, 3, TT_BINARY, c->spec.list ? 3 : 1);
	tw_binary_value(t, c->spec.name, strlen(c->spec.name));
	if (c->spec.list)
	{
		tw_binary_value(t, "list", 4);
		tw_binary_value(t, "element", 7);
	}
	tw_i32(t, 4, (int32_t) w->opts.codec);
	tw_i64(t, 5, c->chunk_values);
	tw_i64(t, 6, total_uncompressed);
	tw_i64(t, 7, w->offset - start);
	tw_i64(t, 9, data_offset);
	if (dict_offset >= 0)
		tw_i64(t, 11, dict_offset);
	tw_begin(t, 12);			/* Statistics */
	tw_i64(t, 3, c->chunk_nulls);
	if (c->has_minmax && !c->stats_off)
	{
		/* max_value, min_value: PLAIN bytes, a byte array's without length */
		tw_binary(t, 5, c->max.data, c->max.len);
		tw_binary(t, 6, c->min.data, c->min.len);
	}
	tw_end(t);
	tw_end(t);					/* ColumnMetaData */
	tw_end(t);					/* ColumnChunk */

	*uncompressed += total_uncompressed;
	*compressed += w->offset - start;
	return 0;
}

static void
reset_chunk(FhPqWriter *w, Column *c)
{
	c->chunk.len = 0;
	c->chunk_values = c->chunk_nulls = c->chunk_uncompressed = 0;
	c->used_plain = c->used_dict = false;
	c->dict_on = w->opts.dictionary && c->physical != PT_BOOLEAN;
	c->dict.len = c->dict_offsets.len = 0;
	c->ndict = 0;
	if (c->slots)
		memset(c->slots, 0, c->nslots * sizeof(int32_t));
	c->has_minmax = c->stats_off = false;
	c->min.len = c->max.len = 0;
}

/* writes the current row group and keeps its RowGroup struct for the footer */
static int
write_row_group(FhPqWriter *w)
{
	Thrift		t = {&w->rowgroups, 0, {0}};
	int64_t		start = w->offset;
	int64_t		uncompressed = 0;
	int64_t		compressed = 0;

	if (w->rg_rows == 0)
		return 0;
	tw_begin(&t, 0);			/* RowGroup */
	tw_list(&t, 1, TT_STRUCT, w->ncols);
	for (int i = 0; i < w->ncols; i++)
	{
		if (write_chunk(w, &w->cols[i], &t, &uncompressed, &compressed) < 0)
			return -1;
		reset_chunk(w, &w->cols[i]);
	}
	tw_i64(&t, 2, uncompressed);
	tw_i64(&t, 3, w->rg_rows);
	tw_i64(&t, 5, start);
	tw_i64(&t, 6, compressed);
	tw_field(&t, 7, TT_I16);
	tw_zigzag(&t, w->nrowgroups);
	tw_end(&t);
	if (w->rowgroups.failed)
	{
		w->dead = true;
		return fail(w, "out of memory");
	}
	w->nrowgroups++;
	w->rg_rows = 0;
	return 0;
}

int
fh_pq_end_row(FhPqWriter *w)
{
	size_t		rg_bytes = 0;

	if (w->dead || w->finished)
		return check_target(w, 0);
	for (int i = 0; i < w->ncols; i++)
	{
		Column	   *c = &w->cols[i];

		if (c->in_list)
			return fail(w, "column \"%s\" has a list not ended", c->spec.name);
	}
	for (int i = 0; i < w->ncols; i++)
	{
		Column	   *c = &w->cols[i];

		if (!c->row_done && add_entry(w, c, 0, 0, NULL, 0) < 0)
			return -1;
		c->row_done = false;
		c->page_rows++;
	}
	w->rows++;
	w->rg_rows++;

	for (int i = 0; i < w->ncols; i++)
	{
		Column	   *c = &w->cols[i];

		if (c->dict_on && c->dict.len > w->opts.page_size)
		{
			/* the dictionary is too big to pay: PLAIN from the next page */
			if (close_page(w, c) < 0)
				return -1;
			c->dict_on = false;
		}
		else if (page_bytes(c) >= w->opts.page_size && close_page(w, c) < 0)
			return -1;
		c->mark_values = c->values.len;
		c->mark_indices = c->indices.len;
		c->mark_levels = c->def.len;
		rg_bytes += c->chunk.len + page_bytes(c) + c->dict.len;
	}
	if (rg_bytes >= w->opts.block_size)
		return write_row_group(w);
	return 0;
}

void
fh_pq_abandon_row(FhPqWriter *w)
{
	for (int i = 0; i < w->ncols; i++)
	{
		Column	   *c = &w->cols[i];

		c->values.len = c->mark_values;
		c->indices.len = c->mark_indices;
		c->def.len = c->rep.len = c->mark_levels;
		c->row_done = c->in_list = false;
	}
}

/* the SchemaElement(s) of a column: one, or three for a list */
static void
put_schema(Thrift *t, const Column *c)
{
	const FhPqColumn *s = &c->spec;

	if (s->list)
	{
		tw_begin(t, 0);
		tw_i32(t, 3, REP_OPTIONAL);
		tw_binary(t, 4, s->name, strlen(s->name));
		tw_i32(t, 5, 1);
		tw_i32(t, 6, CT_LIST);
		if (s->field_id >= 0)
			tw_i32(t, 9, s->field_id);
		tw_begin(t, 10);
		tw_empty(t, 3);			/* LogicalType.LIST */
		tw_end(t);
		tw_end(t);
		tw_begin(t, 0);
		tw_i32(t, 3, REP_REPEATED);
		tw_binary(t, 4, "list", 4);
		tw_i32(t, 5, 1);
		tw_end(t);
	}
	tw_begin(t, 0);
	tw_i32(t, 1, c->physical);
	if (c->physical == PT_FIXED)
		tw_i32(t, 2, c->type_length);
	tw_i32(t, 3, REP_OPTIONAL);
	if (s->list)
		tw_binary(t, 4, "element", 7);
	else
		tw_binary(t, 4, s->name, strlen(s->name));
	switch (s->type)
	{
		case FH_PQ_INT16:
			tw_i32(t, 6, CT_INT_16);
			break;
		case FH_PQ_DECIMAL:
			tw_i32(t, 6, CT_DECIMAL);
			tw_i32(t, 7, s->scale);
			tw_i32(t, 8, s->precision);
			break;
		case FH_PQ_STRING:
			tw_i32(t, 6, CT_UTF8);
			break;
		case FH_PQ_JSON:
			tw_i32(t, 6, CT_JSON);
			break;
		case FH_PQ_DATE:
			tw_i32(t, 6, CT_DATE);
			break;
		case FH_PQ_TIMESTAMP:
			tw_i32(t, 6, CT_TIMESTAMP_MICROS);
			break;
		default:
			break;
	}
	if (s->field_id >= 0 && !s->list)
		tw_i32(t, 9, s->field_id);
	switch (s->type)
	{
		case FH_PQ_INT16:
			tw_begin(t, 10);
			tw_begin(t, 10);	/* INTEGER */
			tw_field(t, 1, TT_BYTE);
			buf_byte(t->b, 16);
			tw_bool(t, 2, true);
			tw_end(t);
			tw_end(t);
			break;
		case FH_PQ_DECIMAL:
			tw_begin(t, 10);
			tw_begin(t, 5);		/* DECIMAL */
			tw_i32(t, 1, s->scale);
			tw_i32(t, 2, s->precision);
			tw_end(t);
			tw_end(t);
			break;
		case FH_PQ_STRING:
		case FH_PQ_JSON:
		case FH_PQ_DATE:
		case FH_PQ_UUID:
			tw_begin(t, 10);
			tw_empty(t, s->type == FH_PQ_STRING ? 1 : s->type == FH_PQ_JSON ? 12 :
					 s->type == FH_PQ_DATE ? 6 : 14);
			tw_end(t);
			break;
		case FH_PQ_TIMESTAMP:
			tw_begin(t, 10);
			tw_begin(t, 8);		/* TIMESTAMP */
			tw_bool(t, 1, true);	/* isAdjustedToUTC */
			tw_begin(t, 2);		/* unit */
			tw_empty(t, 2);		/* MICROS */
			tw_end(t);
			tw_end(t);
			tw_end(t);
			break;
		default:
			break;
	}
	tw_end(t);
}

int
fh_pq_finish(FhPqWriter *w)
{
	Buf			footer = {0};
	Thrift		t = {&footer, 0, {0}};
	int			nschema = 1;
	int			rc;

	if (w->dead || w->finished)
		return check_target(w, 0);
	for (int i = 0; i < w->ncols; i++)
		if (w->cols[i].row_done || w->cols[i].in_list)
			return fail(w, "the last row was not ended");
	if (write_row_group(w) < 0)
		return -1;
	w->finished = true;
	for (int i = 0; i < w->ncols; i++)
		nschema += w->cols[i].spec.list ? 3 : 1;

	/* FileMetaData */
	tw_i32(&t, 1, 1);			/* version */
	tw_list(&t, 2, TT_STRUCT, nschema);
	tw_begin(&t, 0);			/* the root */
	tw_binary(&t, 4, "schema", 6);
	tw_i32(&t, 5, w->ncols);
	tw_end(&t);
	for (int i = 0; i < w->ncols; i++)
		put_schema(&t, &w->cols[i]);
	tw_i64(&t, 3, w->rows);
	tw_list(&t, 4, TT_STRUCT, w->nrowgroups);
	buf_put(&footer, w->rowgroups.data, w->rowgroups.len);
	if (w->opts.created_by)
		tw_binary(&t, 6, w->opts.created_by, strlen(w->opts.created_by));
	tw_list(&t, 7, TT_STRUCT, w->ncols);
	for (int i = 0; i < w->ncols; i++)
	{
		tw_begin(&t, 0);		/* ColumnOrder */
		tw_empty(&t, 1);		/* TYPE_ORDER */
		tw_end(&t);
	}
	buf_byte(&footer, 0);		/* FileMetaData's stop */
	buf_le(&footer, footer.len, 4);
	buf_put(&footer, "PAR1", 4);
	if (footer.failed)
	{
		buf_free(&footer);
		w->dead = true;
		return fail(w, "out of memory");
	}
	rc = emit(w, footer.data, footer.len);
	buf_free(&footer);
	return rc;
}

void
fh_pq_options_default(FhPqOptions *opts)
{
	opts->codec = FH_PQ_SNAPPY;
	opts->block_size = (size_t) 256 << 20;
	opts->page_size = (size_t) 1 << 20;
	opts->dictionary = true;
	opts->writer_version = 1;
	opts->created_by = NULL;
}

/* bytes of the shortest two's complement that holds precision digits */
static int
decimal_bytes(int precision)
{
	int			n = 1;
	double		limit = pow(10.0, precision);

	while (ldexp(1.0, 8 * n - 1) < limit)
		n++;
	return n;
}

FhPqWriter *
fh_pq_writer_create(const FhPqColumn *columns, int ncolumns,
					const FhPqOptions *opts, FhPqWriteFn write, void *arg,
					char error[FH_PQ_ERROR_LEN])
{
	FhPqWriter *w;
	const uint16_t one = 1;

	if (*(const uint8_t *) &one != 1)
	{
		/* values are copied in host order into PLAIN (little-endian) */
		snprintf(error, FH_PQ_ERROR_LEN, "the parquet writer needs a little-endian host");
		return NULL;
	}
	if (ncolumns < 1)
	{
		snprintf(error, FH_PQ_ERROR_LEN, "a parquet file needs at least one column");
		return NULL;
	}
	if (opts->writer_version != 1 && opts->writer_version != 2)
	{
		snprintf(error, FH_PQ_ERROR_LEN, "writer version must be 1 or 2, not %d",
				 opts->writer_version);
		return NULL;
	}
	if (opts->codec != FH_PQ_UNCOMPRESSED && opts->codec != FH_PQ_SNAPPY &&
		opts->codec != FH_PQ_GZIP && opts->codec != FH_PQ_ZSTD)
	{
		snprintf(error, FH_PQ_ERROR_LEN, "unknown codec %d", (int) opts->codec);
		return NULL;
	}
	for (int i = 0; i < ncolumns; i++)
	{
		const FhPqColumn *s = &columns[i];

		if (s->name == NULL || s->name[0] == '\0')
		{
			snprintf(error, FH_PQ_ERROR_LEN, "column %d has no name", i + 1);
			return NULL;
		}
		if ((int) s->type < FH_PQ_BOOLEAN || s->type > FH_PQ_UUID)
		{
			snprintf(error, FH_PQ_ERROR_LEN, "column \"%s\" has an unknown type", s->name);
			return NULL;
		}
		if (s->type == FH_PQ_DECIMAL &&
			(s->precision < 1 || s->precision > FH_PQ_MAX_DECIMAL_PRECISION ||
			 s->scale < 0 || s->scale > s->precision))
		{
			snprintf(error, FH_PQ_ERROR_LEN,
					 "column \"%s\": decimal precision must be 1 to %d and scale 0 to the precision",
					 s->name, FH_PQ_MAX_DECIMAL_PRECISION);
			return NULL;
		}
	}

	w = calloc(1, sizeof(FhPqWriter));
	if (w == NULL || (w->cols = calloc((size_t) ncolumns, sizeof(Column))) == NULL)
	{
		free(w);
		snprintf(error, FH_PQ_ERROR_LEN, "out of memory");
		return NULL;
	}
	w->opts = *opts;
	w->write = write;
	w->arg = arg;
	w->ncols = ncolumns;
	for (int i = 0; i < ncolumns; i++)
	{
		Column	   *c = &w->cols[i];
		size_t		namelen = strlen(columns[i].name);
		char	   *name = malloc(namelen + 1);

		if (name == NULL)
		{
			fh_pq_writer_free(w);
			snprintf(error, FH_PQ_ERROR_LEN, "out of memory");
			return NULL;
		}
		memcpy(name, columns[i].name, namelen + 1);
		c->spec = columns[i];
		c->spec.name = name;
		switch (c->spec.type)
		{
			case FH_PQ_BOOLEAN:
				c->physical = PT_BOOLEAN;
				break;
			case FH_PQ_INT16:
			case FH_PQ_INT32:
			case FH_PQ_DATE:
				c->physical = PT_INT32;
				break;
			case FH_PQ_INT64:
			case FH_PQ_TIMESTAMP:
				c->physical = PT_INT64;
				break;
			case FH_PQ_FLOAT:
				c->physical = PT_FLOAT;
				break;
			case FH_PQ_DOUBLE:
				c->physical = PT_DOUBLE;
				break;
			case FH_PQ_DECIMAL:
				if (c->spec.precision <= 9)
					c->physical = PT_INT32;
				else if (c->spec.precision <= 18)
					c->physical = PT_INT64;
				else
				{
					c->physical = PT_FIXED;
					c->type_length = decimal_bytes(c->spec.precision);
				}
				break;
			case FH_PQ_STRING:
			case FH_PQ_JSON:
			case FH_PQ_BYTES:
				c->physical = PT_BYTE_ARRAY;
				break;
			case FH_PQ_UUID:
				c->physical = PT_FIXED;
				c->type_length = 16;
				break;
		}
		c->max_def = c->spec.list ? 3 : 1;
		c->max_rep = c->spec.list ? 1 : 0;
		reset_chunk(w, c);
	}
	if (emit(w, "PAR1", 4) < 0)
	{
		snprintf(error, FH_PQ_ERROR_LEN, "%s", w->error);
		fh_pq_writer_free(w);
		return NULL;
	}
	return w;
}

void
fh_pq_writer_free(FhPqWriter *w)
{
	if (w == NULL)
		return;
	for (int i = 0; i < w->ncols; i++)
	{
		Column	   *c = &w->cols[i];

		free((char *) c->spec.name);
		buf_free(&c->values);
		buf_free(&c->indices);
		buf_free(&c->def);
		buf_free(&c->rep);
		buf_free(&c->chunk);
		buf_free(&c->dict);
		buf_free(&c->dict_offsets);
		buf_free(&c->min);
		buf_free(&c->max);
		free(c->slots);
	}
	free(w->cols);
	buf_free(&w->rowgroups);
	buf_free(&w->scratch);
	buf_free(&w->scratch2);
	free(w);
}

const char *
fh_pq_error(const FhPqWriter *w)
{
	return w->error;
}

int64_t
fh_pq_rows(const FhPqWriter *w)
{
	return w->rows;
}

size_t
fh_pq_rle_hybrid(const uint32_t *values, size_t n, int bit_width,
				 uint8_t *out, size_t outsize)
{
	Buf			b = {0};
	size_t		len = 0;

	rle_hybrid(&b, (const uint8_t *) values, 4, n, bit_width);
	if (!b.failed && b.len <= outsize)
	{
		memcpy(out, b.data, b.len);
		len = b.len;
	}
	buf_free(&b);
	return len;
}
