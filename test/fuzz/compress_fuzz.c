/*-------------------------------------------------------------------------
 *
 * compress_fuzz.c
 *	  libFuzzer target of src/compress.c: the framing of the S3 object
 *	  compressions (zstd, Snappy framing format, Hadoop's block Snappy),
 *	  each checked by a round trip through the format's decoder.
 *
 * compress.c is compiled with PostgreSQL's server headers but linked
 * without the server: StringInfo and palloc come from libpgcommon (the
 * frontend build), CRC-32C from libpgport, and the two things of the
 * backend it names are stubs here that abort: elog (only reached for an
 * unknown compression name, which this target never passes) and fh_gzip
 * (util.c, zlib's own gzip member with no framing of ours: not fuzzed).
 *
 * Input: 1 byte of compression, 1 byte k, then the data.  With k 254 the
 * data is repeated up to 80 KiB, with 255 up to 288 KiB, so that some
 * inputs cross the 64 KiB chunks of the Snappy framing format and the
 * 256 KiB blocks of Hadoop's; the others stay small, as big buffers are
 * slow (fresh pages under ASan).
 *
 * Checks: the decoder of each format reads the output back to exactly the
 * input, every Snappy frame chunk carries the right masked CRC-32C and at
 * most 64 KiB, every Hadoop block at most 256 KiB; compressing again into
 * the same StringInfo gives the same bytes (fh_compress resets it).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <snappy-c.h>
#include <zstd.h>

#include "port/pg_crc32c.h"

#include "fuzz.h"

/* ---------- the backend's pieces compress.c names: stubs ---------- */

bool
errstart(int elevel, const char *domain)
{
	abort();
}

bool
errstart_cold(int elevel, const char *domain)
{
	abort();
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	abort();
}

int
errmsg_internal(const char *fmt,...)
{
	abort();
}

bool
fh_gzip(const char *in, size_t inlen, StringInfo out)
{
	abort();
}

/* ---------- decoders ---------- */

static uint32
get_le(const unsigned char *p, int n)
{
	uint32		v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint32) p[i] << (8 * i);
	return v;
}

static uint32
get_be32(const unsigned char *p)
{
	return ((uint32) p[0] << 24) | ((uint32) p[1] << 16) |
		((uint32) p[2] << 8) | (uint32) p[3];
}

/* uncompress one Snappy chunk of clen bytes at c, appending to out */
static void
unsnappy(const char *c, size_t clen, size_t max, StringInfo out)
{
	size_t		n;

	fuzz_assert(snappy_uncompressed_length(c, clen, &n) == SNAPPY_OK);
	fuzz_assert(n <= max);
	enlargeStringInfo(out, (int) n);
	fuzz_assert(snappy_uncompress(c, clen, out->data + out->len, &n) == SNAPPY_OK);
	out->len += (int) n;
}

/* the Snappy framing format: stream identifier, then compressed chunks */
static void
decode_snappy_framed(const unsigned char *p, size_t len, StringInfo out)
{
	size_t		off = 10;

	fuzz_assert(len >= 10 && memcmp(p, "\xff\x06\x00\x00sNaPpY", 10) == 0);
	while (off < len)
	{
		size_t		clen;
		pg_crc32c	crc;
		int			start = out->len;

		fuzz_assert(len - off >= 8 && p[off] == 0x00);
		clen = get_le(p + off + 1, 3);
		fuzz_assert(clen >= 4 && clen - 4 <= len - off - 8);
		unsnappy((const char *) p + off + 8, clen - 4, 65536, out);
		INIT_CRC32C(crc);
		COMP_CRC32C(crc, out->data + start, out->len - start);
		FIN_CRC32C(crc);
		fuzz_assert(get_le(p + off + 4, 4) == ((crc >> 15) | (crc << 17)) + 0xa282ead8);
		off += 4 + clen;
	}
}

/* Hadoop's BlockCompressorStream: uncompressed length, chunk length, chunk */
static void
decode_hadoop_snappy(const unsigned char *p, size_t len, StringInfo out)
{
	size_t		off = 0;

	while (off < len)
	{
		uint32		n;
		uint32		clen;
		int			start = out->len;

		fuzz_assert(len - off >= 8);
		n = get_be32(p + off);
		clen = get_be32(p + off + 4);
		fuzz_assert(clen <= len - off - 8);
		unsnappy((const char *) p + off + 8, clen, 256 * 1024, out);
		fuzz_assert((uint32) (out->len - start) == n && n > 0);
		off += 8 + clen;
	}
}

static void
decode_zstd(const unsigned char *p, size_t len, StringInfo out)
{
	unsigned long long n = ZSTD_getFrameContentSize(p, len);
	size_t		got;

	fuzz_assert(n != ZSTD_CONTENTSIZE_ERROR && n != ZSTD_CONTENTSIZE_UNKNOWN);
	enlargeStringInfo(out, (int) n);
	got = ZSTD_decompress(out->data, n + 1, p, len);
	fuzz_assert(!ZSTD_isError(got) && got == n);
	out->len = (int) got;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const FhCompression kinds[] = {
		FH_COMPRESS_NONE, FH_COMPRESS_ZSTD, FH_COMPRESS_SNAPPY,
		FH_COMPRESS_HADOOP_SNAPPY
	};
	FuzzInput	in = {data, size};
	FhCompression kind = kinds[fuzz_u64(&in, 1) % 4];
	size_t		k = fuzz_u64(&in, 1);
	size_t		want = k == 255 ? 288 * 1024 : k == 254 ? 80 * 1024 : 0;
	StringInfoData src;
	StringInfoData out;
	StringInfoData again;
	StringInfoData back;

	initStringInfo(&src);
	appendBinaryStringInfo(&src, (const char *) in.p, (int) in.n);
	while (in.n > 0 && (size_t) src.len < want)
	{
		int			n = (int) Min((size_t) src.len, want - src.len);

		/* doubling; enlarge first, as it may move src.data */
		enlargeStringInfo(&src, n);
		memcpy(src.data + src.len, src.data, n);
		src.len += n;
		src.data[src.len] = '\0';
	}

	initStringInfo(&out);
	initStringInfo(&again);
	initStringInfo(&back);
	fuzz_assert(fh_compress(kind, src.data, src.len, &out));
	appendStringInfoString(&again, "left over from before");
	fuzz_assert(fh_compress(kind, src.data, src.len, &again));
	fuzz_assert(out.len == again.len && memcmp(out.data, again.data, out.len) == 0);
	fuzz_assert(out.data[out.len] == '\0');

	switch (kind)
	{
		case FH_COMPRESS_NONE:
			appendBinaryStringInfo(&back, out.data, out.len);
			break;
		case FH_COMPRESS_ZSTD:
			decode_zstd((unsigned char *) out.data, out.len, &back);
			break;
		case FH_COMPRESS_SNAPPY:
			decode_snappy_framed((unsigned char *) out.data, out.len, &back);
			break;
		case FH_COMPRESS_HADOOP_SNAPPY:
			decode_hadoop_snappy((unsigned char *) out.data, out.len, &back);
			break;
		default:
			abort();
	}
	fuzz_assert(back.len == src.len && memcmp(back.data, src.data, src.len) == 0);

	pfree(src.data);
	pfree(out.data);
	pfree(again.data);
	pfree(back.data);
	return 0;
}
