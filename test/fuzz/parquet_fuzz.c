/*-------------------------------------------------------------------------
 *
 * parquet_fuzz.c
 *	  libFuzzer target of src/parquet_writer.c: the RLE/bit-packed hybrid
 *	  checked by a decoder written here from Encodings.md, and the writer
 *	  driven through any sequence of calls.
 *
 * Input: 1 byte selects the part.
 *	- even: bit width (1 byte, 1..32), then values of 4 bytes each (masked
 *	  to the width): encoded, then decoded back to exactly the values.
 *	- odd: options (1 byte: codec, dictionary, page version), up to 4
 *	  columns (1 byte each: type, list), then operations of 1 byte each
 *	  (value, NULL, list begin/end, end of row, abandon the row) with their
 *	  bytes: the writer must never crash, leak or misread memory, must
 *	  refuse what does not fit with -1 and a message, and must produce a
 *	  file that begins with "PAR1" and ends with its footer's length and
 *	  "PAR1"; the rows it counts are the rows ended.
 *
 *-------------------------------------------------------------------------
 */
#include "parquet_writer.h"

#include "fuzz.h"

#include <stdarg.h>

#define MAX_VALUES 4096

/* a property broken: say which, with the values, and abort */
static void
fuzz_fail(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* decodes n values of the hybrid encoding; false when it is malformed */
static bool
decode(const uint8_t *p, size_t len, int bw, uint32_t *out, size_t n)
{
	size_t		got = 0;
	size_t		at = 0;

	while (got < n)
	{
		uint64_t	header = 0;
		int			shift = 0;

		do
		{
			if (at >= len || shift > 56)
				return false;
			header |= (uint64_t) (p[at] & 0x7f) << shift;
			shift += 7;
		} while (p[at++] & 0x80);
		if (header & 1)
		{
			/* bit-packed: (header >> 1) groups of 8, LSB first */
			size_t		count = (size_t) (header >> 1) * 8;
			uint64_t	acc = 0;
			int			bits = 0;

			for (size_t k = 0; k < count; k++)
			{
				while (bits < bw)
				{
					if (at >= len)
						return false;
					acc |= (uint64_t) p[at++] << bits;
					bits += 8;
				}
				if (got < n)
					out[got++] = (uint32_t) (acc & ((bw == 32) ? 0xffffffffu : ((1u << bw) - 1)));
				acc >>= bw;
				bits -= bw;
			}
		}
		else
		{
			size_t		count = (size_t) (header >> 1);
			uint32_t	v = 0;

			if (count == 0)
				return false;
			for (int b = 0; b < (bw + 7) / 8; b++)
			{
				if (at >= len)
					return false;
				v |= (uint32_t) p[at++] << (8 * b);
			}
			for (size_t k = 0; k < count && got < n; k++)
				out[got++] = v;
		}
	}
	return at == len;
}

static void
fuzz_rle(FuzzInput *in)
{
	static uint32_t values[MAX_VALUES];
	static uint32_t back[MAX_VALUES];
	static uint8_t out[MAX_VALUES * 5 + 64];
	int			bw = (int) (fuzz_u64(in, 1) % 32) + 1;
	uint32_t	mask = bw == 32 ? 0xffffffffu : (1u << bw) - 1;
	size_t		n = 0;
	size_t		len;

	while (in->n >= 1 && n < MAX_VALUES)
	{
		/* 1 byte: a run of 1..16 of the next value, so that runs happen */
		int			run = (int) (fuzz_u64(in, 1) & 15) + 1;
		uint32_t	v = (uint32_t) fuzz_u64(in, 4) & mask;

		for (int k = 0; k < run && n < MAX_VALUES; k++)
			values[n++] = v;
	}
	if (n == 0)
		return;
	len = fh_pq_rle_hybrid(values, n, bw, out, sizeof(out));
	if (len == 0)
		fuzz_fail("rle: %zu values of width %d did not fit %zu bytes", n, bw, sizeof(out));
	if (!decode(out, len, bw, back, n))
		fuzz_fail("rle: the encoding of %zu values of width %d does not decode", n, bw);
	for (size_t i = 0; i < n; i++)
		if (back[i] != values[i])
			fuzz_fail("rle: value %zu of width %d: %u came back as %u", i, bw,
					  values[i], back[i]);
}

typedef struct Out
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
} Out;

static int
write_out(void *arg, const void *data, size_t len)
{
	Out		   *o = arg;

	if (o->len + len > o->cap)
	{
		size_t		cap = (o->len + len) * 2;
		uint8_t    *p = realloc(o->data, cap);

		if (p == NULL)
			return -1;
		o->data = p;
		o->cap = cap;
	}
	memcpy(o->data + o->len, data, len);
	o->len += len;
	return 0;
}

static void
fuzz_writer(FuzzInput *in)
{
	static const FhPqCodec codecs[] = {FH_PQ_UNCOMPRESSED, FH_PQ_SNAPPY, FH_PQ_GZIP, FH_PQ_ZSTD};
	FhPqColumn	cols[4];
	FhPqOptions opts;
	int			o = (int) fuzz_u64(in, 1);
	int			ncols = (int) (fuzz_u64(in, 1) % 4) + 1;
	char		err[FH_PQ_ERROR_LEN];
	Out			out = {0};
	FhPqWriter *w;
	int64_t		rows = 0;

	fh_pq_options_default(&opts);
	opts.codec = codecs[o & 3];
	opts.dictionary = (o & 4) != 0;
	opts.writer_version = (o & 8) ? 2 : 1;
	opts.page_size = 64 + (o >> 4) * 97;	/* small: many pages */
	opts.block_size = opts.page_size * 5;
	for (int i = 0; i < ncols; i++)
	{
		int			t = (int) fuzz_u64(in, 1);

		cols[i].name = (const char *[]) {"a", "b", "c", "d"}[i];
		cols[i].type = (FhPqType) ((t & 15) % 13);
		cols[i].list = (t & 16) != 0;
		cols[i].precision = 1 + (t >> 5) * 5;	/* 1 .. 36 */
		cols[i].scale = (t >> 5);
		cols[i].field_id = i;
	}
	w = fh_pq_writer_create(cols, ncols, &opts, write_out, &out, err);
	if (w == NULL)
		fuzz_fail("writer: refused valid columns: %s", err);

	while (in->n > 0)
	{
		int			op = (int) fuzz_u64(in, 1);
		int			col = (op >> 3) % ncols;
		int			rc = 0;
		uint8_t		bytes[40];
		size_t		n;

		switch (op & 7)
		{
			case 0:
				rc = fh_pq_int(w, col, (int64_t) fuzz_u64(in, 8));
				break;
			case 1:
				{
					uint64_t	bits = fuzz_u64(in, 8);
					double		d;

					memcpy(&d, &bits, 8);
					rc = fh_pq_double(w, col, d);
					break;
				}
			case 2:
				n = fuzz_u64(in, 1) % sizeof(bytes);
				for (size_t k = 0; k < n; k++)
					bytes[k] = (uint8_t) fuzz_u64(in, 1);
				rc = fh_pq_bytes(w, col, bytes, n);
				break;
			case 3:
				{
					char	   *s = fuzz_string(in);

					rc = fh_pq_decimal(w, col, s ? s : "");
					free(s);
					break;
				}
			case 4:
				rc = (op & 64) ? fh_pq_bool(w, col, op & 128) : fh_pq_null(w, col);
				break;
			case 5:
				rc = (op & 64) ? fh_pq_list_end(w, col) : fh_pq_list_begin(w, col);
				break;
			case 6:
				rc = fh_pq_end_row(w);
				if (rc == 0)
					rows++;
				break;
			case 7:
				fh_pq_abandon_row(w);
				break;
		}
		if (rc != 0 && fh_pq_error(w)[0] == '\0')
			fuzz_fail("writer: -1 without a message (op %d)", op & 7);
	}
	/* end the last row as a caller would: close an open list, or drop it */
	if (fh_pq_end_row(w) == 0)
		rows++;
	else
		fh_pq_abandon_row(w);
	if (fh_pq_finish(w) != 0)
		fuzz_fail("writer: finish failed: %s", fh_pq_error(w));
	if (fh_pq_rows(w) != rows)
		fuzz_fail("writer: %lld rows counted, %lld ended", (long long) fh_pq_rows(w),
				  (long long) rows);
	if (out.len < 12 || memcmp(out.data, "PAR1", 4) != 0 ||
		memcmp(out.data + out.len - 4, "PAR1", 4) != 0)
		fuzz_fail("writer: the file does not begin and end with PAR1");
	{
		const uint8_t *t = out.data + out.len - 8;
		size_t		footer = (size_t) t[0] | (size_t) t[1] << 8 |
			(size_t) t[2] << 16 | (size_t) t[3] << 24;

		if (footer + 12 > out.len || out.data[out.len - 9] != 0)
			fuzz_fail("writer: footer length %zu in a file of %zu bytes, or no stop byte",
					  footer, out.len);
	}
	fh_pq_writer_free(w);
	free(out.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};

	if (size == 0)
		return 0;
	if (fuzz_u64(&in, 1) & 1)
		fuzz_writer(&in);
	else
		fuzz_rle(&in);
	return 0;
}
