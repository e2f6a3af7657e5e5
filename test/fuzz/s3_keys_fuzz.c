/*-------------------------------------------------------------------------
 *
 * s3_keys_fuzz.c
 *	  libFuzzer target of src/s3_keys.c: Prefix / ErrorOutputPrefix
 *	  templates, their evaluation, object keys, time zones and file
 *	  extensions, from arbitrary bytes.
 *
 * Input: 8 bytes of time (epoch ms), 4 of time zone offset, 16 of batch
 * id, 2 of stream version, then NUL-separated strings: prefix, error
 * output prefix, stream name, file extension, time zone, error output
 * type.
 *
 * Besides memory errors (ASan) and undefined behaviour (UBSan), it checks
 * what s3_keys.h promises: every message and output is NUL-terminated
 * inside its buffer; a layout that parses (without partition keys: their
 * values are not bounded by parsing) always evaluates, for every
 * instant of the years 1 to 9999 and every offset up to 18 hours (parsing
 * bounds the evaluated length); the same inputs give the same prefix and
 * key; a key is the prefix followed by the stream name, at most 1024 bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "s3_keys.h"
#include "fuzz.h"

#define MIN_MS	INT64_C(-62135596800000)	/* 0001-01-01T00:00Z */
#define MAX_MS	INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */
#define MAX_OFFSET_S (18 * 3600)

/* Firehose's error output types, the longest included (s3_keys.c) */
static const char *const error_types[] = {
	"processing-failed", "AmazonOpenSearchService-failed", "splunk-failed",
	"format-conversion-failed", "http-endpoint-failed",
	"decompression-failed", NULL
};

/* a partition key's value, for every key of a prefix (at most one a 2 bytes) */
#define MAX_KEYS	(FH_S3KEY_MAX_PREFIX_CHARS * 3)
static const char *key_values[MAX_KEYS];

/*
 * evaluate one prefix of layout at t; checks the properties of a result.
 * A Prefix with partition keys (dynamic partitioning; never the error
 * output prefix) evaluates only with their values: without them it must
 * fail cleanly, and with them parsing promises nothing of the length,
 * since the values are not bounded by it (each may be 512 characters).
 */
static void
eval_one(const FhS3KeyLayout *layout, FhS3KeyTime t, const char *type,
		 const unsigned char id[16], bool must_succeed,
		 char out[FH_S3KEY_PREFIX_BUFSIZE])
{
	char		rnd[FH_S3KEY_MAX_RANDOM][FH_S3KEY_RANDOM_LEN + 1];
	const char *rp[FH_S3KEY_MAX_RANDOM];
	char		again[FH_S3KEY_PREFIX_BUFSIZE];
	char		err[FH_S3KEY_ERROR_LEN];
	int			n = fh_s3key_nrandom(layout, type != NULL);
	int			nkeys = type ? 0 : fh_s3key_npartition_keys(layout);
	FhS3KeyStatus st;

	fuzz_assert(n >= 0 && n <= FH_S3KEY_MAX_RANDOM);
	fuzz_assert(nkeys >= 0 && nkeys <= MAX_KEYS);
	for (int i = 0; i < n; i++)
	{
		fh_s3key_random_string(id, i, rnd[i]);
		rp[i] = rnd[i];
	}
	if (nkeys > 0)
	{
		st = fh_s3key_eval_prefix(layout, t, type, rp, n, out, err);
		fuzz_assert(st != FH_S3KEY_OK && out[0] == '\0' && err[0] != '\0');
		fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
		must_succeed = false;
	}
	st = fh_s3key_eval_prefix_keys(layout, t, type, rp, n, key_values, nkeys, out, err);
	fuzz_assert_terminated(out, FH_S3KEY_PREFIX_BUFSIZE);
	fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
	if (must_succeed && st != FH_S3KEY_OK)
		fprintf(stderr, "evaluation failed: %s\n", err);
	if (must_succeed)
		fuzz_assert(st == FH_S3KEY_OK);
	if (st != FH_S3KEY_OK)
	{
		fuzz_assert(out[0] == '\0' && err[0] != '\0');
		return;
	}
	st = fh_s3key_eval_prefix_keys(layout, t, type, rp, n, key_values, nkeys, again, err);
	fuzz_assert(st == FH_S3KEY_OK && strcmp(out, again) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	FhS3KeyTime t;
	unsigned char id[16];
	int64_t		version;
	char	   *prefix;
	char	   *error_prefix;
	char	   *stream;
	char	   *ext;
	char	   *zone;
	char	   *type;
	FhS3KeyLayout *layout = NULL;
	char		err[FH_S3KEY_ERROR_LEN];
	char		out[FH_S3KEY_PREFIX_BUFSIZE];
	char		key[FH_S3KEY_KEY_BUFSIZE];
	int32_t		offset;
	FhS3KeyStatus st;

	for (int i = 0; i < MAX_KEYS; i++)
		key_values[i] = "k";
	t.epoch_ms = (int64_t) fuzz_u64(&in, 8);
	t.utc_offset_s = (int32_t) fuzz_u64(&in, 4);
	for (int i = 0; i < 16; i++)
		id[i] = (unsigned char) fuzz_u64(&in, 1);
	version = (int64_t) (int16_t) fuzz_u64(&in, 2);
	prefix = fuzz_string(&in);
	error_prefix = fuzz_string(&in);
	stream = fuzz_string(&in);
	ext = fuzz_string(&in);
	zone = fuzz_string(&in);
	type = fuzz_string(&in);

	/* time zones and extensions alone */
	st = fh_s3key_parse_zone(zone, &offset, err);
	fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
	if (st == FH_S3KEY_OK)
		fuzz_assert(offset >= -MAX_OFFSET_S && offset <= MAX_OFFSET_S);
	st = fh_s3key_check_extension(ext, err);
	fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
	if (st != FH_S3KEY_OK)
		fuzz_assert(err[0] != '\0');
	(void) fh_s3key_is_error_output_type(type);

	st = fh_s3key_layout_parse(prefix, error_prefix, &layout, err);
	fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
	if (st != FH_S3KEY_OK)
	{
		fuzz_assert(err[0] != '\0');
		goto done;
	}

	/*
	 * The instant and offset as given (may be out of range: must fail
	 * cleanly), then brought into range, where parsing promised success.
	 */
	eval_one(layout, t, NULL, id, false, out);
	eval_one(layout, t, type, id, false, out);
	t.utc_offset_s %= MAX_OFFSET_S + 1;
	t.epoch_ms = MIN_MS + MAX_OFFSET_S * INT64_C(1000) +
		(int64_t) ((uint64_t) t.epoch_ms %
				   (uint64_t) (MAX_MS - MIN_MS - 2 * MAX_OFFSET_S * INT64_C(1000)));
	for (int k = 0; error_types[k]; k++)
		eval_one(layout, t, error_types[k], id, true, out);
	eval_one(layout, t, NULL, id, true, out);

	/* the key of the evaluated Prefix */
	st = fh_s3key_object_key(out, stream, version, t, id,
							 ext && ext[0] ? ext : NULL, key, err);
	fuzz_assert_terminated(key, FH_S3KEY_KEY_BUFSIZE);
	fuzz_assert_terminated(err, FH_S3KEY_ERROR_LEN);
	if (st == FH_S3KEY_OK)
	{
		size_t		plen = strlen(out);

		fuzz_assert(strlen(key) <= 1024);
		fuzz_assert(strncmp(key, out, plen) == 0);
		fuzz_assert(strncmp(key + plen, stream, strlen(stream)) == 0);
	}
	else
		fuzz_assert(err[0] != '\0');

done:
	fh_s3key_layout_free(layout);
	free(prefix);
	free(error_prefix);
	free(stream);
	free(ext);
	free(zone);
	free(type);
	return 0;
}
