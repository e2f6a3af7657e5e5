/*-------------------------------------------------------------------------
 *
 * compress.c
 *	  The object compressions of the S3 destination, each with the library
 *	  that owns the format: gzip (zlib, util.c), zstd (libzstd), and Snappy
 *	  in the two containers Firehose offers (libsnappy):
 *
 *	- snappy: the Snappy framing format
 *	  (https://github.com/google/snappy/blob/main/framing_format.txt): the
 *	  stream identifier chunk, then for every 64 KiB of input a compressed
 *	  chunk: type 0x00, 24-bit little-endian length, the masked CRC-32C of
 *	  the uncompressed bytes (little-endian), the compressed bytes;
 *	- hadoop_snappy: Hadoop's BlockCompressorStream with SnappyCodec: for
 *	  every block of input (256 KiB, Hadoop's default buffer) its
 *	  uncompressed length, then the compressed chunk's length and bytes,
 *	  both lengths 32-bit big-endian.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <snappy-c.h>
#include <zstd.h>

#include "port/pg_crc32c.h"

#define SNAPPY_FRAME_CHUNK	65536	/* the framing format's limit */
#define HADOOP_BLOCK		(256 * 1024)

const char *const fh_compression_names[] = {"none", "gzip", "zstd", "snappy", "hadoop_snappy", NULL};

FhCompression
fh_compression_from_name(const char *name)
{
	for (int i = 0; fh_compression_names[i]; i++)
		if (strcmp(fh_compression_names[i], name) == 0)
			return (FhCompression) i;
	elog(ERROR, "unknown compression \"%s\"", name);
	return FH_COMPRESS_NONE;	/* keep the compiler quiet */
}

static void
put_le(char *p, uint32 v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char) ((v >> (8 * i)) & 0xff);
}

static void
put_be32(char *p, uint32 v)
{
	p[0] = (char) (v >> 24);
	p[1] = (char) (v >> 16);
	p[2] = (char) (v >> 8);
	p[3] = (char) v;
}

static bool
snappy_framed(const char *in, size_t len, StringInfo out)
{
	static const char stream_id[] = "\xff\x06\x00\x00sNaPpY";
	size_t		bound = snappy_max_compressed_length(SNAPPY_FRAME_CHUNK);

	appendBinaryStringInfo(out, stream_id, 10);
	for (size_t off = 0; off < len; off += SNAPPY_FRAME_CHUNK)
	{
		size_t		n = Min(len - off, SNAPPY_FRAME_CHUNK);
		size_t		clen = bound;
		pg_crc32c	crc;
		uint32		masked;
		char	   *hdr;

		enlargeStringInfo(out, 8 + bound);
		hdr = out->data + out->len;
		if (snappy_compress(in + off, n, hdr + 8, &clen) != SNAPPY_OK)
			return false;
		INIT_CRC32C(crc);
		COMP_CRC32C(crc, in + off, n);
		FIN_CRC32C(crc);
		masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8;
		hdr[0] = 0x00;
		put_le(hdr + 1, (uint32) (clen + 4), 3);
		put_le(hdr + 4, masked, 4);
		out->len += 8 + clen;
		out->data[out->len] = '\0';
	}
	return true;
}

static bool
hadoop_snappy(const char *in, size_t len, StringInfo out)
{
	size_t		bound = snappy_max_compressed_length(HADOOP_BLOCK);

	for (size_t off = 0; off < len; off += HADOOP_BLOCK)
	{
		size_t		n = Min(len - off, HADOOP_BLOCK);
		size_t		clen = bound;
		char	   *hdr;

		enlargeStringInfo(out, 8 + bound);
		hdr = out->data + out->len;
		if (snappy_compress(in + off, n, hdr + 8, &clen) != SNAPPY_OK)
			return false;
		put_be32(hdr, (uint32) n);
		put_be32(hdr + 4, (uint32) clen);
		out->len += 8 + clen;
		out->data[out->len] = '\0';
	}
	return true;
}

static bool
zstd_frame(const char *in, size_t len, StringInfo out)
{
	size_t		bound = ZSTD_compressBound(len);
	size_t		n;

	enlargeStringInfo(out, bound);
	n = ZSTD_compress(out->data, bound, in, len, ZSTD_CLEVEL_DEFAULT);
	if (ZSTD_isError(n))
		return false;
	out->len = n;
	out->data[n] = '\0';
	return true;
}

/*
 * fh_compress
 *		Compress in into out (initialized; reset here).  False when the
 *		library failed (out of memory).
 */
bool
fh_compress(FhCompression kind, const char *in, size_t len, StringInfo out)
{
	resetStringInfo(out);
	switch (kind)
	{
		case FH_COMPRESS_NONE:
			appendBinaryStringInfo(out, in, len);
			return true;
		case FH_COMPRESS_GZIP:
			return fh_gzip(in, len, out);
		case FH_COMPRESS_ZSTD:
			return zstd_frame(in, len, out);
		case FH_COMPRESS_SNAPPY:
			return snappy_framed(in, len, out);
		case FH_COMPRESS_HADOOP_SNAPPY:
			return hadoop_snappy(in, len, out);
	}
	return false;
}
