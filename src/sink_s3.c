/*-------------------------------------------------------------------------
 *
 * sink_s3.c
 *	  destination 's3': one object per part, with Firehose's key layout,
 *	  compression, and our own AWS Signature V4 (aws_sigv4.c); and S3 as
 *	  the backup store of the other destinations (option "backup").
 *
 * An object is the part's records, each followed by the delimiter,
 * compressed.  Its key is <evaluated prefix><stream>-<version>-
 * yyyy-MM-dd-HH-mm-ss-<uuid><ext> (s3_keys.c), the time being the arrival
 * of the oldest record and the uuid the part's object_id, which the worker
 * derives from the part's place in its batch: a retried upload, even by a
 * restarted worker, writes the same key.
 *
 * Small objects are one PutObject.  Above multipart_threshold the object
 * goes up in a multipart upload, a state machine driven by the worker:
 *	CreateMultipartUpload (POST ?uploads)        -> UploadId
 *	UploadPart (PUT ?partNumber=N&uploadId=...)  -> ETag, for every slice
 *	CompleteMultipartUpload (POST ?uploadId=...) -> 200 without <Error>
 *	AbortMultipartUpload (DELETE ?uploadId=...)  when the part fails
 * Each slice is sent from the one encoded object, never copied.  Every step
 * answered with NEXT is sent at once; a failed step is retried alone.
 *
 * With option "format" (format_parquet.c) the object is a Parquet file of
 * the part's records instead, key extension ".parquet".  The records that
 * do not convert fail alone; once the file is stored (or at once, when no
 * record converted), their error records (firehose.md 3.8) go up as one
 * more object under the error prefix, error output type
 * "format-conversion-failed" (step S3_ERRORS).  The records in the file
 * count as delivered by then, so that a failure to store the error records
 * fails the failed records alone.
 *
 * Dynamic partitioning (firehose.md 3.5): when the prefix has
 * !{partitionKeyFromQuery:name} (option partition_keys: name -> jsonpath,
 * evaluated on each JSON record) or !{partitionKeyFromLambda:name} (the
 * partition_keys the processors returned), s3_split() evaluates each
 * record's prefix and groups the part's records by it: the worker sends
 * each group as an object of its own (a child part), all in parallel up to
 * max_concurrency.  A record whose key is missing, not a scalar, or not fit
 * for a key fails alone (error output type "partitioning-failed"), and so
 * do the records of prefixes beyond max_active_partitions in one part
 * ("activePartitionExceeded"); their error records go up under the error
 * prefix.
 *
 * Errors: the Code and Message of S3's XML error body (answers.c)
 * become errorCode "S3.<Code>" and errorMessage.  5xx, 408, 429 and the
 * codes SlowDown, RequestTimeout, RequestTimeTooSkewed, InternalError
 * retry with backoff; other 4xx (AccessDenied, NoSuchBucket,
 * SignatureDoesNotMatch, InvalidAccessKeyId, ...) fail at once.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "answers.h"
#include "mb/pg_wchar.h"
#include "aws_sigv4.h"
#include "pgtime.h"
#include "s3_keys.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonpath.h"
#include "utils/memutils.h"

#define MB					(1024LL * 1024LL)
#define S3_MAX_PARTS		10000
#define S3_MAX_OBJECT		(512 * MB)	/* what one part may carry */
#define ERROR_BODY_MAX		2048
#define MAX_PARTITION_KEYS	50	/* Firehose: at most 50 keys (firehose.md 1.11) */

/* the error codes and output types of records dynamic partitioning cannot place */
#define PARTITION_FAILED_TYPE		"partitioning-failed"
#define PARTITION_FAILED_CODE		"DynamicPartitioning.MetadataExtractionFailed"
#define PARTITION_EXCEEDED_TYPE		"activePartitionExceeded"
#define PARTITION_EXCEEDED_CODE		"DynamicPartitioning.ActivePartitionsLimitExceeded"

/* by FhCompression */
static const char *const default_extensions[] = {"", ".gz", ".zst", ".snappy", ".hsnappy"};
static const char *const credential_sources[] = {"static", "environment", NULL};
static const char *const storage_classes[] = {
	"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
	"INTELLIGENT_TIERING", "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE", NULL
};
static const char *const sse_modes[] = {"AES256", "aws:kms", "aws:kms:dsse", NULL};

typedef struct S3Config
{
	char	   *bucket;
	bool		path_style;
	FhS3KeyLayout *layout;
	FhCompression compression;
	char	   *extension;
	pg_tz	   *tz;				/* NULL: a fixed offset */
	int32		fixed_offset_s;
	char	   *delimiter;
	char	   *content_type;
	char	   *storage_class;
	char	   *sse;
	char	   *sse_kms_key_id;
	FhAwsTarget aws;			/* the endpoint's scheme, the Host header
								 * ([bucket.]host[:port]), region, keys */
	int64		multipart_threshold;
	int64		multipart_part_size;
	bool		tls_verify;
	char	   *ca_file;
	char	   *stream;
	int32		version;
	FhFormat   *format;			/* record format conversion, or NULL */
	/* dynamic partitioning: the prefix's keys, in order (none: nkeys 0) */
	int			nkeys;
	char	  **key_names;
	bool	   *key_lambda;		/* from the processors, not partition_keys */
	Datum	   *key_paths;		/* the jsonpath of a query key */
	int64		max_active_partitions;
	Jsonb	   *partition_keys;
} S3Config;

/* the options with a field of their own are written into S3Config */
#define S3C(member) FH_FIELD(S3Config, member)
const FhOptionDef fh_s3_options[] = {
	{"bucket", FH_OPT_STRING, 0, 63, NULL, NULL, false, true, .location = true, S3C(bucket)},
	{"region", FH_OPT_STRING, 0, 64, "\"us-east-1\"", .location = true},
	{"endpoint", FH_OPT_URL, 0, 1000, NULL, .location = true},
	{"path_style", FH_OPT_BOOL, 0, 0, "false", S3C(path_style)},
	{"prefix", FH_OPT_STRING, 0, 4096, "\"\""},
	{"error_output_prefix", FH_OPT_STRING, 0, 4096, NULL},
	{"compression", FH_OPT_ENUM, 0, 0, "\"none\"", fh_compression_names},
	{"file_extension", FH_OPT_STRING, 0, 128, NULL},
	{"time_zone", FH_OPT_STRING, 0, 50, "\"UTC\""},
	{"delimiter", FH_OPT_STRING, 0, 64, "\"\\n\"", S3C(delimiter)},
	{"content_type", FH_OPT_STRING, 0, 256, "\"application/octet-stream\"", S3C(content_type)},
	{"storage_class", FH_OPT_ENUM, 0, 0, NULL, storage_classes, S3C(storage_class)},
	{"sse", FH_OPT_ENUM, 0, 0, NULL, sse_modes, S3C(sse)},
	{"sse_kms_key_id", FH_OPT_STRING, 0, 2048, NULL, S3C(sse_kms_key_id)},
	{"credentials", FH_OPT_ENUM, 0, 0, "\"static\"", credential_sources},
	{"access_key_id", FH_OPT_STRING, 0, 128, NULL, NULL, true},
	{"secret_access_key", FH_OPT_STRING, 0, 256, NULL, NULL, true},
	{"session_token", FH_OPT_STRING, 0, 8192, NULL, NULL, true},
	{"multipart_threshold", FH_OPT_BYTES, 5 * MB, 5120 * MB, "16777216", S3C(multipart_threshold)},
	{"multipart_part_size", FH_OPT_BYTES, 5 * MB, 5120 * MB, "8388608", S3C(multipart_part_size)},
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true", S3C(tls_verify)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, S3C(ca_file)},
	{"partition_keys", FH_OPT_STRMAP, 0, 4096, NULL, S3C(partition_keys)},
	{"max_active_partitions", FH_OPT_INT, 1, 5000, NULL, S3C(max_active_partitions)},
	{"format", FH_OPT_OBJECT, .nested = fh_format_options,
		.normalize = fh_format_normalize,
	.what = "an object such as {\"type\": \"parquet\", \"schema\": \"public.events\"}"},
	{NULL}
};
#undef S3C


typedef enum S3Step
{
	S3_PUT,
	S3_CREATE,
	S3_UPLOAD,
	S3_COMPLETE,
	S3_ABORT,
	S3_ERRORS					/* PUT of the error records of conversion */
} S3Step;

/* one object's upload, kept in the part across retries and steps */
typedef struct S3State
{
	S3Step		step;
	StringInfoData object;		/* the encoded object */
	char	   *key;
	char	   *upload_id;
	int			nslices;
	int64		slice_size;
	int			slice;			/* the slice being sent, from 0 */
	char	  **etags;
	FhVerdict	final;			/* while aborting: the verdict to return */
	StringInfoData errors;		/* error records of records that did not
								 * convert, to be written after the object */
	char	   *error_key;
} S3State;

static bool
valid_bucket(const char *b)
{
	size_t		n = strlen(b);

	if (n < 3 || n > 63)
		return false;
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

/* the zone's name resolved: a fixed offset, or a PostgreSQL zone */
static pg_tz *
resolve_zone(const char *name, int32 *offset)
{
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyStatus st = fh_s3key_parse_zone(name, offset, err);
	pg_tz	   *tz;

	if (st == FH_S3KEY_OK)
		return NULL;
	if (st != FH_S3KEY_ZONE_NAMED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"time_zone\" is not valid"),
				 errdetail("%s", err),
				 errhint("Give an IANA time zone name such as \"Asia/Tokyo\", or \"UTC\".")));
	tz = pg_tzset(name);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"time_zone\" names an unknown time zone: \"%s\"", name),
				 errhint("Give an IANA time zone name such as \"Asia/Tokyo\", or \"UTC\".")));
	return tz;
}

/* the jsonpath of partition key name (path, its text), with a clear error */
static Datum
partition_key_path(const char *name, const char *path)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		d = (Datum) 0;

	PG_TRY();
	{
		d = DirectFunctionCall1(jsonpath_in, CStringGetDatum(path));
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partition key \"%s\" of option \"partition_keys\" is not a valid JSON path: \"%s\"",
						name, path),
				 errdetail("%s", ed->message),
				 errhint("Give a PostgreSQL jsonpath such as \"$.customer_id\" or \"$.ts.year\".")));
	}
	PG_END_TRY();
	return d;
}

/*
 * Dynamic partitioning's rules (firehose.md 3.3, 3.5, 2): every
 * !{partitionKeyFromQuery:name} of the prefix has its path in
 * partition_keys, and every path there is used and valid; at most 50 keys;
 * an error output prefix (checked with the prefix: it has expressions); no
 * zero buffering; not in a backup store, which has no buffering of its
 * own (its options come without buffer_interval).
 */
static void
validate_partitioning(Jsonb *o)
{
	char	   *prefix = "";
	char	   *eop = NULL;
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyLayout *layout;
	JsonbValue *keys = fh_jsonb_get(o, "partition_keys");
	Jsonb	   *keymap = keys ? JsonbValueToJsonb(keys) : NULL;
	int			nkeys;
	int			nquery = 0;
	JsonbValue *interval = fh_jsonb_get(o, "buffer_interval");

	fh_jsonb_get_text(o, "prefix", &prefix);
	fh_jsonb_get_text(o, "error_output_prefix", &eop);
	if (fh_s3key_layout_parse(prefix, eop, &layout, err) != FH_S3KEY_OK)
		return;					/* reported by the caller */
	nkeys = fh_s3key_npartition_keys(layout);
	for (int k = 0; k < nkeys; k++)
	{
		char		name[FH_S3KEY_MAX_KEY_NAME + 1];
		char	   *path;

		if (fh_s3key_partition_key(layout, k, name))
			continue;
		nquery++;
		if (keymap == NULL || !fh_jsonb_get_text(keymap, name, &path))
		{
			fh_s3key_layout_free(layout);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("prefix uses !{partitionKeyFromQuery:%s}, but option \"partition_keys\" has no key \"%s\"",
							name, name),
					 errhint("Add it to \"partition_keys\", an object of key name to JSON path, such as {\"%s\": \"$.%s\"}.",
							 name, name)));
		}
	}
	fh_s3key_layout_free(layout);

	if (keymap)
	{
		JsonbIterator *it = JsonbIteratorInit(&keymap->root);
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *name = NULL;
		int			n = 0;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				name = pnstrdup(kv.val.string.val, kv.val.string.len);
				n++;
			}
			else if (tok == WJB_VALUE)
				(void) partition_key_path(name, pnstrdup(kv.val.string.val,
														 kv.val.string.len));
		}
		if (n > MAX_PARTITION_KEYS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"partition_keys\" has %d keys; at most %d are allowed",
							n, MAX_PARTITION_KEYS)));
		if (nquery == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"partition_keys\" is set, but prefix uses no !{partitionKeyFromQuery:...}"),
					 errhint("Use the keys in \"prefix\", such as \"customer=!{partitionKeyFromQuery:customer}/\", or leave \"partition_keys\" out.")));
	}
	if (nkeys == 0)
		return;
	if (interval == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an S3 backup store cannot partition records dynamically"),
				 errdetail("Its prefix uses !{partitionKeyFrom...}, which only the prefix of an s3 destination may."),
				 errhint("Use !{timestamp:...} and !{firehose:...} in the backup store's prefix.")));
	if (interval->type == jbvNumeric &&
		DatumGetInt64(DirectFunctionCall1(numeric_int8,
										  NumericGetDatum(interval->val.numeric))) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dynamic partitioning needs a buffer_interval above 0"),
				 errdetail("Zero buffering is not available with dynamic partitioning, as in Firehose: records are grouped by prefix within what one buffer holds."),
				 errhint("Set \"buffer_interval\" to 60 seconds or more, or take !{partitionKeyFrom...} out of the prefix.")));
}

static void
s3_validate(Jsonb *o)
{
	char	   *s = NULL;
	char	   *eop = NULL;
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyLayout *layout;
	int32		off;

	fh_jsonb_get_text(o, "bucket", &s);
	if (!valid_bucket(s))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"bucket\" is not a valid bucket name: \"%s\"", s),
				 errhint("Bucket names have 3 to 63 lowercase letters, digits, dots and hyphens, and begin and end with a letter or digit.")));

	fh_jsonb_get_text(o, "region", &s);
	if (s[0] == '\0' || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"region\" is not a valid region: \"%s\"", s),
				 errhint("Give a region name such as \"us-east-1\".")));

	if (fh_jsonb_get_text(o, "endpoint", &s))
	{
		CURLU	   *h = curl_url();
		char	   *path = NULL;
		char	   *query = NULL;
		bool		ok;

		curl_url_set(h, CURLUPART_URL, s, 0);
		ok = curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
			strcmp(path, "/") == 0 &&
			curl_url_get(h, CURLUPART_QUERY, &query, 0) == CURLUE_NO_QUERY;
		if (path)
			curl_free(path);
		if (query)
			curl_free(query);
		curl_url_cleanup(h);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"endpoint\" must not have a path or query: \"%s\"", s),
					 errhint("Give the service's base URL, such as \"https://s3.eu-west-1.amazonaws.com\"; the bucket goes in \"bucket\".")));
	}

	s = "";
	fh_jsonb_get_text(o, "prefix", &s);
	if (fh_s3key_layout_parse(s, fh_jsonb_get_text(o, "error_output_prefix", &eop) ? eop : NULL,
							  &layout, err) != FH_S3KEY_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"prefix\" or \"error_output_prefix\" is not valid"),
				 errdetail("%s", err),
				 errhint("See the S3 prefix rules in the README: !{timestamp:...}, !{firehose:random-string}, !{partitionKeyFromQuery:...} and !{partitionKeyFromLambda:...} in prefix only, and !{firehose:error-output-type} in error_output_prefix only.")));
	fh_s3key_layout_free(layout);

	if (fh_jsonb_get_text(o, "file_extension", &s) &&
		fh_s3key_check_extension(s, err) != FH_S3KEY_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"file_extension\" is not valid: \"%s\"", s),
				 errdetail("%s", err),
				 errhint("An extension starts with a dot, such as \".json.gz\".")));

	fh_jsonb_get_text(o, "time_zone", &s);
	(void) resolve_zone(s, &off);

	validate_partitioning(o);

	if (fh_jsonb_get(o, "sse_kms_key_id") &&
		!(fh_jsonb_get_text(o, "sse", &s) && strncmp(s, "aws:kms", 7) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"sse_kms_key_id\" needs \"sse\": \"aws:kms\""),
				 errhint("Set \"sse\" to \"aws:kms\" or \"aws:kms:dsse\" to encrypt with a KMS key.")));

	fh_aws_validate_credentials(o, "destination \"s3\"");

	/* Firehose: "CompressionFormat must be UNCOMPRESSED" when converting */
	if (fh_jsonb_get(o, "format") && fh_jsonb_get_text(o, "compression", &s) &&
		strcmp(s, "none") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"compression\" must be \"none\" with option \"format\""),
				 errdetail("A Parquet file compresses its pages itself."),
				 errhint("Set \"compression\" inside \"format\" (snappy, gzip, zstd or none) and leave the S3 \"compression\" unset.")));
}

static void
free_layout(void *arg)
{
	fh_s3key_layout_free((FhS3KeyLayout *) arg);
}

static void *
s3_configure(Jsonb *o, const char *stream, int32 version)
{
	S3Config   *c = palloc0(sizeof(S3Config));
	char	   *s = NULL;
	char	   *endpoint = NULL;
	char	   *prefix = "";
	char	   *eop = NULL;
	char		err[FH_S3KEY_ERROR_LEN];
	MemoryContextCallback *cb;
	char	   *host = NULL;
	char	   *path = NULL;

	/* Firehose's default; not written into the options of every S3 stream */
	c->max_active_partitions = 500;
	fh_options_load(fh_s3_options, o, c);
	fh_jsonb_get_text(o, "region", (char **) &c->aws.region);
	if (!fh_jsonb_get_text(o, "endpoint", &endpoint))
		endpoint = psprintf("https://s3.%s.amazonaws.com", c->aws.region);
	fh_url_split(endpoint, (char **) &c->aws.scheme, &host, &path);
	c->aws.host = c->path_style ? host : psprintf("%s.%s", c->bucket, host);
	c->aws.service = "s3";
	fh_aws_credentials(o, &c->aws);

	fh_jsonb_get_text(o, "prefix", &prefix);
	fh_jsonb_get_text(o, "error_output_prefix", &eop);
	if (fh_s3key_layout_parse(prefix, eop, &c->layout, err) != FH_S3KEY_OK)
		elog(ERROR, "invalid S3 prefix: %s", err);
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = free_layout;
	cb->arg = c->layout;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	fh_jsonb_get_text(o, "compression", &s);
	c->compression = fh_compression_from_name(s);
	if (fh_jsonb_get(o, "format"))
		c->format = fh_format_configure(JsonbValueToJsonb(fh_jsonb_get(o, "format")));
	if (!fh_jsonb_get_text(o, "file_extension", &c->extension))
		c->extension = c->format ? ".parquet" :
			(char *) default_extensions[c->compression];
	fh_jsonb_get_text(o, "time_zone", &s);
	c->tz = resolve_zone(s, &c->fixed_offset_s);
	if (strcmp(c->delimiter, "none") == 0)
		c->delimiter = "";
	c->stream = pstrdup(stream);
	c->version = version;

	c->nkeys = fh_s3key_npartition_keys(c->layout);
	if (c->nkeys > 0)
	{
		c->key_names = palloc(sizeof(char *) * c->nkeys);
		c->key_lambda = palloc(sizeof(bool) * c->nkeys);
		c->key_paths = palloc0(sizeof(Datum) * c->nkeys);
		for (int k = 0; k < c->nkeys; k++)
		{
			char		name[FH_S3KEY_MAX_KEY_NAME + 1];
			char	   *path;

			c->key_lambda[k] = fh_s3key_partition_key(c->layout, k, name);
			c->key_names[k] = pstrdup(name);
			if (!c->key_lambda[k] &&
				fh_jsonb_get_text(c->partition_keys, name, &path))
				c->key_paths[k] = partition_key_path(name, path);
		}
	}
	return c;
}

static void
s3_limits(void *config, int *max_records, int64 *max_bytes)
{
	*max_records = 1000000;
	*max_bytes = S3_MAX_OBJECT;
}

/* ---------- encoding ---------- */

/* the instant t of a key, in the stream's time zone */
static FhS3KeyTime
key_time(S3Config *c, TimestampTz at)
{
	FhS3KeyTime t;

	t.epoch_ms = fh_epoch_ms(at);
	t.utc_offset_s = c->fixed_offset_s;
	if (c->tz)
	{
		pg_time_t	secs = (pg_time_t) (t.epoch_ms / 1000);
		struct pg_tm *tm = pg_localtime(&secs, c->tz);

		t.utc_offset_s = tm ? (int32) tm->tm_gmtoff : 0;
	}
	return t;
}

/* the n random strings of the object whose id is id */
static void
random_strings(const unsigned char *id, int n,
			   char rnd[FH_S3KEY_MAX_RANDOM][FH_S3KEY_RANDOM_LEN + 1],
			   const char **rp)
{
	for (int i = 0; i < n && i < FH_S3KEY_MAX_RANDOM; i++)
	{
		fh_s3key_random_string(id, i, rnd[i]);
		rp[i] = rnd[i];
	}
}

/* the key of part's object; false with the reason in *why */
static bool
object_key(S3Config *c, FhPartView *part, const char *error_type, const char *ext,
		   char **key, char **why)
{
	FhS3KeyTime t;
	char		rnd[FH_S3KEY_MAX_RANDOM][FH_S3KEY_RANDOM_LEN + 1];
	const char *rp[FH_S3KEY_MAX_RANDOM];
	char		prefix[FH_S3KEY_PREFIX_BUFSIZE];
	char		out[FH_S3KEY_KEY_BUFSIZE];
	char		err[FH_S3KEY_ERROR_LEN];
	int			n = fh_s3key_nrandom(c->layout, error_type != NULL);

	t = key_time(c, part->oldest_arrival);
	random_strings(part->object_id, n, rnd, rp);
	if (error_type == NULL && part->prefix)
		strlcpy(prefix, part->prefix, sizeof(prefix));
	else if (fh_s3key_eval_prefix(c->layout, t, error_type, rp, n, prefix, err) != FH_S3KEY_OK)
	{
		*why = pstrdup(err);
		return false;
	}
	if (fh_s3key_object_key(prefix, c->stream, c->version, t, part->object_id,
							ext, out, err) != FH_S3KEY_OK)
	{
		*why = pstrdup(err);
		return false;
	}
	*key = pstrdup(out);
	return true;
}

/* ---------- dynamic partitioning ---------- */

/*
 * Record r as jsonb, or NULL with *why when it is not JSON (jsonb_in
 * refuses some JSON the parser takes, \u0000 or huge numbers: data errors
 * that fail the record alone, as the Parquet conversion does).
 */
static Jsonb *
record_doc(const FhRecord *r, char **why)
{
	const char *data = VARDATA_ANY(r->data);
	int			len = VARSIZE_ANY_EXHDR(r->data);
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile doc = NULL;

	if (memchr(data, '\0', len) != NULL || !pg_verifymbstr(data, len, true) ||
		!fh_is_json(data, len))
	{
		*why = "The record is not JSON, so the partition keys of option \"partition_keys\" cannot be read from it.";
		return NULL;
	}
	PG_TRY();
	{
		doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(data, len))));
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(ed->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			ed->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			PG_RE_THROW();
		FlushErrorState();
		*why = psprintf("The record cannot be read as jsonb: %s", ed->message);
	}
	PG_END_TRY();
	return doc;
}

/*
 * The value of the k-th partition key of record i of part, or NULL with
 * *why; *doc is the record as jsonb, parsed on first need.
 */
static char *
key_value(S3Config *c, FhPartView *part, int i, int k, Jsonb **doc, bool *parsed,
		  char **why)
{
	const char *name = c->key_names[k];
	char	   *text;

	if (c->key_lambda[k])
	{
		Jsonb	   *keys = part->partition_keys ? part->partition_keys[i] : NULL;
		JsonbValue *v = fh_jsonb_get(keys, name);

		if (v == NULL || v->type == jbvNull)
		{
			*why = psprintf("The processors gave no partition key \"%s\" (partitionKeyFromLambda).", name);
			return NULL;
		}
		text = fh_jsonb_scalar_text(v, true);
		if (text == NULL)
			*why = psprintf("The partition key \"%s\" the processors gave is not a scalar.", name);
		return text;
	}
	if (!*parsed)
	{
		*doc = record_doc(&part->records[i], why);
		*parsed = true;
	}
	if (*doc == NULL)
	{
		if (*why == NULL)
			*why = "The record is not JSON.";
		return NULL;
	}
	{
		bool		found;

		text = fh_jsonb_path_scalar(*doc, c->key_paths[k], true, &found);
		if (text == NULL)
			*why = found ?
				psprintf("The value of partition key \"%s\" (partitionKeyFromQuery) is not a scalar.", name) :
				psprintf("The record has no value for partition key \"%s\" (partitionKeyFromQuery).", name);
	}
	return text;
}

typedef struct PrefixEntry
{
	char		prefix[FH_S3KEY_PREFIX_BUFSIZE];
	int			group;
} PrefixEntry;

/*
 * s3_split: the objects of a part of a partitioned stream.  Every record's
 * prefix is evaluated with its own keys and arrival time; the records of
 * one prefix make one object, the first max_active_partitions prefixes of
 * the part in order of first appearance.  The others fail alone; the
 * error records of the records failed here make the last one or two
 * objects (partitioning-failed, activePartitionExceeded).
 */
static int
s3_split(void *config, FhPartView *part, FhObjectGroup **groups_out, bool *exceeded)
{
	S3Config   *c = config;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext tmp;
	HASHCTL		ctl;
	HTAB	   *prefixes;
	int		   *group_of;
	int		   *counts;
	FhObjectGroup *groups;
	int			ngroups = 0;
	int			nfailed = 0;
	int			nexceeded = 0;
	char		rnd[FH_S3KEY_MAX_RANDOM][FH_S3KEY_RANDOM_LEN + 1];
	const char *rp[FH_S3KEY_MAX_RANDOM];
	int			nrandom = fh_s3key_nrandom(c->layout, false);
	const char **values;
	int			total;

	*exceeded = false;
	if (c->nkeys == 0 || part->error_output_type || part->nrecords == 0)
		return 0;
	tmp = AllocSetContextCreate(outer, "firehose partitioning", ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = FH_S3KEY_PREFIX_BUFSIZE;
	ctl.entrysize = sizeof(PrefixEntry);
	ctl.hcxt = tmp;
	prefixes = hash_create("firehose prefixes", 64, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	group_of = palloc(sizeof(int) * part->nrecords);
	/* the prefixes of the groups, in order, and the two error groups */
	groups = palloc0(sizeof(FhObjectGroup) * (Min(c->max_active_partitions, part->nrecords) + 2));
	values = palloc(sizeof(char *) * c->nkeys);
	random_strings(part->object_id, nrandom, rnd, rp);

	for (int i = 0; i < part->nrecords; i++)
	{
		char		prefix[FH_S3KEY_PREFIX_BUFSIZE];
		char		err[FH_S3KEY_ERROR_LEN];
		char	   *why = NULL;
		Jsonb	   *doc = NULL;
		bool		parsed = false;
		bool		found;
		PrefixEntry *e;
		int			k;

		MemoryContextSwitchTo(tmp);
		for (k = 0; k < c->nkeys; k++)
			if ((values[k] = key_value(c, part, i, k, &doc, &parsed, &why)) == NULL)
				break;
		if (k == c->nkeys &&
			fh_s3key_eval_prefix_keys(c->layout, key_time(c, part->records[i].arrival),
									  NULL, rp, nrandom, values, c->nkeys,
									  prefix, err) != FH_S3KEY_OK)
			why = psprintf("The prefix cannot be made with the record's partition keys: %s", err);
		MemoryContextSwitchTo(outer);
		if (why)
		{
			fh_view_fail(part, i, PARTITION_FAILED_CODE, pstrdup(why));
			group_of[i] = -1;
			nfailed++;
			continue;
		}
		e = hash_search(prefixes, prefix, ngroups < c->max_active_partitions ?
						HASH_ENTER : HASH_FIND, &found);
		if (e == NULL)
		{
			fh_view_fail(part, i, PARTITION_EXCEEDED_CODE,
						 psprintf("The part has more than max_active_partitions (" INT64_FORMAT ") prefixes; this record's prefix \"%s\" is not among them.",
								  c->max_active_partitions, prefix));
			group_of[i] = -2;
			nexceeded++;
			continue;
		}
		if (!found)
		{
			e->group = ngroups;
			groups[ngroups++].prefix = pstrdup(prefix);
		}
		group_of[i] = e->group;
		groups[e->group].nrecords++;
	}
	MemoryContextDelete(tmp);

	/* the error groups after the prefixes' */
	total = ngroups;
	if (nfailed > 0)
	{
		groups[total].error_output_type = PARTITION_FAILED_TYPE;
		groups[total++].nrecords = nfailed;
	}
	if (nexceeded > 0)
	{
		groups[total].error_output_type = PARTITION_EXCEEDED_TYPE;
		groups[total++].nrecords = nexceeded;
		*exceeded = true;
	}
	counts = palloc0(sizeof(int) * total);
	for (int g = 0; g < total; g++)
		groups[g].index = palloc(sizeof(int) * groups[g].nrecords);
	for (int i = 0; i < part->nrecords; i++)
	{
		int			g = group_of[i] >= 0 ? group_of[i] :
			group_of[i] == -1 ? ngroups : total - 1;

		groups[g].index[counts[g]++] = i;
	}
	pfree(counts);
	pfree(group_of);
	*groups_out = groups;
	return total;
}

/*
 * The object: records delimited and compressed.  Error records (a backup
 * store's) end in their own line feed and take no delimiter.
 */
static bool
build_object(S3Config *c, FhPartView *part, StringInfo object)
{
	StringInfoData raw;
	int			dlen = part->error_output_type ? 0 : strlen(c->delimiter);
	bool		ok;

	initStringInfo(&raw);
	for (int i = 0; i < part->nrecords; i++)
	{
		appendBinaryStringInfo(&raw, VARDATA_ANY(part->records[i].data),
							   VARSIZE_ANY_EXHDR(part->records[i].data));
		appendBinaryStringInfo(&raw, c->delimiter, dlen);
	}
	if (c->compression == FH_COMPRESS_NONE)
	{
		*object = raw;
		return true;
	}
	initStringInfo(object);
	ok = fh_compress(c->compression, raw.data, raw.len, object);
	pfree(raw.data);
	return ok;
}

/*
 * The Parquet object of part (empty when no record converts), and the
 * error records of the records that did not convert, with their key under
 * the error prefix (none when it cannot be made: the records are in
 * failed_records all the same).
 */
static void
convert_part(S3Config *c, FhPartView *part, S3State *st)
{
	int			rows = fh_format_convert(c->format, part, &st->object);
	TimestampTz now = GetCurrentTimestamp();
	FhVerdict	none = {0};
	char	   *why = NULL;

	if (rows == part->nrecords)
		return;
	initStringInfo(&st->errors);
	for (int i = 0; i < part->nrecords; i++)
	{
		bytea	   *e;

		if (fh_view_pending(part, i))
			continue;
		/* converted once, so one attempt, ending now */
		e = fh_error_record(&part->records[i], fh_view_verdict(part, i, &none), 1, now,
							&fh_sink_s3, c, part, i);
		appendBinaryStringInfo(&st->errors, VARDATA(e), VARSIZE(e) - VARHDRSZ);
		pfree(e);
	}
	if (!object_key(c, part, FH_FORMAT_ERROR_OUTPUT_TYPE, "", &st->error_key, &why))
		ereport(WARNING,
				(errmsg("firehose stream \"%s\": the error records of records that did not convert are not written",
						c->stream),
				 errdetail("The key could not be made: %s", why)));
}

/* the fields of a format conversion error record beside Firehose's common ones */
static void
s3_error_fields(void *config, const FhPartView *part, int i, StringInfo out)
{
	S3Config   *c = config;
	char	   *schema;
	char	   *table;

	if (c->format == NULL || !part->rec_state || part->rec_state[i] != FH_REC_FAILED ||
		part->rec_verdict[i].error_code == NULL ||
		strcmp(part->rec_verdict[i].error_code, FH_FORMAT_ERROR_CODE) != 0)
		return;
	fh_format_table(c->format, &schema, &table);
	appendStringInfoString(out, ",\"dataCatalogTable\":{\"databaseName\":");
	escape_json(out, schema);
	appendStringInfoString(out, ",\"tableName\":");
	escape_json(out, table);
	appendStringInfoChar(out, '}');
}

/* sign and address one request on the object's key */
static void
sign_request(S3Config *c, const char *key, FhRequest *req, const char *method,
			 const char *query, const char *data, size_t len,
			 const char *const *extra, int nextra, const char *content_type)
{
	char	   *path = c->path_style ? psprintf("/%s/%s", c->bucket, key) :
		psprintf("/%s", key);

	fh_aws_sign_request(&c->aws, req, method, path, query, data, len,
						extra, nextra, content_type);
	req->tls_verify = c->tls_verify;
	req->ca_file = c->ca_file;
}

/* the headers that describe a new object: storage class, encryption */
static int
object_headers(S3Config *c, const char **extra)
{
	int			n = 0;

	if (c->storage_class)
	{
		extra[2 * n] = "x-amz-storage-class";
		extra[2 * n++ + 1] = c->storage_class;
	}
	if (c->sse)
	{
		extra[2 * n] = "x-amz-server-side-encryption";
		extra[2 * n++ + 1] = c->sse;
	}
	if (c->sse_kms_key_id)
	{
		extra[2 * n] = "x-amz-server-side-encryption-aws-kms-key-id";
		extra[2 * n++ + 1] = c->sse_kms_key_id;
	}
	return n;
}

static char *
upload_query(S3State *st, bool with_part)
{
	char	   *enc = palloc(strlen(st->upload_id) * 3 + 1);

	enc[fh_sigv4_uri_encode(enc, st->upload_id, strlen(st->upload_id), false)] = '\0';
	if (with_part)
		return psprintf("partNumber=%d&uploadId=%s", st->slice + 1, enc);
	return psprintf("uploadId=%s", enc);
}

static void
s3_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *verdict)
{
	S3Config   *c = config;
	S3State    *st = part->state;
	const char *extra[12];
	int			nextra;

	if (st == NULL)
	{
		char	   *why = NULL;

		st = palloc0(sizeof(S3State));
		if (fh_aws_missing_credentials(&c->aws, verdict, "S3.MissingCredentials"))
			return;				/* req->url stays NULL: fails at once */
		/* error records are JSON lines, whatever the objects' format */
		if (!object_key(c, part, part->error_output_type,
						part->error_output_type && c->format ? "" : c->extension,
						&st->key, &why))
		{
			fh_verdict_set(verdict, FH_OUTCOME_FAIL, "S3.InvalidObjectKey",
						   psprintf("The object key could not be made: %s", why));
			return;
		}
		if (c->format && part->error_output_type == NULL)
		{
			convert_part(c, part, st);
			if (st->object.len == 0)
			{
				part->state = st;
				if (st->error_key == NULL)
				{
					/* every record failed alone, and nowhere to write why */
					fh_verdict_set(verdict, FH_OUTCOME_OK, NULL, NULL);
					return;
				}
				st->step = S3_ERRORS;
			}
		}
		else if (!build_object(c, part, &st->object))
			elog(ERROR, "could not compress an S3 object");
		if (st->step == S3_ERRORS)
			;
		else if (st->object.len > c->multipart_threshold)
		{
			st->step = S3_CREATE;
			st->slice_size = Max(c->multipart_part_size,
								 (st->object.len + S3_MAX_PARTS - 1) / S3_MAX_PARTS);
			st->nslices = (int) ((st->object.len + st->slice_size - 1) / st->slice_size);
			st->etags = palloc0(sizeof(char *) * st->nslices);
		}
		else
			st->step = S3_PUT;
		part->state = st;
	}

	switch (st->step)
	{
		case S3_PUT:
			nextra = object_headers(c, extra);
			sign_request(c, st->key, req, "PUT", NULL, st->object.data, st->object.len,
						 extra, nextra, c->content_type);
			break;
		case S3_CREATE:
			nextra = object_headers(c, extra);
			sign_request(c, st->key, req, "POST", "uploads=", NULL, 0, extra, nextra,
						 c->content_type);
			break;
		case S3_UPLOAD:
			{
				int64		off = st->slice * st->slice_size;
				int64		len = Min(st->slice_size, st->object.len - off);

				sign_request(c, st->key, req, "PUT", upload_query(st, true),
							 st->object.data + off, len, NULL, 0, NULL);
				break;
			}
		case S3_COMPLETE:
			{
				StringInfoData xml;

				initStringInfo(&xml);
				appendStringInfoString(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
				for (int i = 0; i < st->nslices; i++)
				{
					appendStringInfo(&xml, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
					/* ETags are quoted hex: nothing to escape but quotes */
					for (const char *p = st->etags[i]; *p; p++)
						appendStringInfoString(&xml, *p == '"' ? "&quot;" : (char[]) {*p, '\0'});
					appendStringInfoString(&xml, "</ETag></Part>");
				}
				appendStringInfoString(&xml, "</CompleteMultipartUpload>");
				sign_request(c, st->key, req, "POST", upload_query(st, false),
							 xml.data, xml.len, NULL, 0, "application/xml");
				break;
			}
		case S3_ABORT:
			sign_request(c, st->key, req, "DELETE", upload_query(st, false), NULL, 0,
						 NULL, 0, NULL);
			break;
		case S3_ERRORS:
			nextra = object_headers(c, extra);
			sign_request(c, st->error_key, req, "PUT", NULL, st->errors.data,
						 st->errors.len, extra, nextra, c->content_type);
			break;
	}
}

/* ---------- responses ---------- */

static bool
retryable_code(const char *code)
{
	static const char *const codes[] = {
		"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
		"ServiceUnavailable", "OperationAborted", NULL
	};

	for (int i = 0; codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

static const char *const step_names[] = {
	"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
	"AbortMultipartUpload", "PutObject (error records)"
};

/*
 * The object is stored: done, unless error records of records that did
 * not convert are to follow.  The records in the object are delivered
 * whatever becomes of those.
 */
static void
object_stored(FhPartView *part, S3State *st, FhVerdict *v)
{
	if (st->error_key == NULL)
	{
		v->outcome = FH_OUTCOME_OK;
		return;
	}
	for (int i = 0; i < part->nrecords; i++)
		if (fh_view_pending(part, i))
			fh_view_deliver(part, i);
	st->step = S3_ERRORS;
	v->outcome = FH_OUTCOME_NEXT;
}

/*
 * An S3 error answer (any status, Complete's 200 included) into v: a, its
 * body read by fh_s3_answer
 */
static void
s3_error_verdict(S3State *st, const char *what, FhResponse *resp, const FhS3Answer *a,
				 FhVerdict *v)
{
	const char *code = a->has_code ? a->code : NULL;
	const char *message = a->has_message ? a->message : NULL;
	long		status = resp->status;

	v->error_code = code ? psprintf("S3.%s", code) : psprintf("S3.HTTP%ld", status);
	v->error_message = psprintf("%s answered %ld%s%s%s%s", what, status,
								code ? " " : "", code ? code : "",
								message ? ": " : "", message ? message : "");
	if (code == NULL && message == NULL && resp->body.len > 0)
		v->error_message = psprintf("%s: %.*s", v->error_message,
									Min(resp->body.len, ERROR_BODY_MAX), resp->body.data);
	if (status >= 500 || status == 408 || status == 429 || (code && retryable_code(code)))
		v->outcome = FH_OUTCOME_RETRY;
	else if (code && strcmp(code, "NoSuchUpload") == 0 && st && st->step != S3_ABORT)
	{
		/* the upload is gone (expired, aborted): start it over */
		v->outcome = FH_OUTCOME_RETRY;
		st->step = S3_CREATE;
		st->upload_id = NULL;
	}
	else
		v->outcome = FH_OUTCOME_FAIL;
}

/* no answer at all (what: the step): retried; false if there is one */
static bool
no_response(FhResponse *resp, const char *what, FhVerdict *v)
{
	if (resp->status != 0)
		return false;
	v->outcome = FH_OUTCOME_RETRY;
	v->error_code = resp->curl_code == CURLE_OPERATION_TIMEDOUT ?
		"S3.RequestTimeout" : "S3.ConnectionFailed";
	v->error_message = psprintf("%s: %s", what,
								resp->curl_error ? resp->curl_error : "no response");
	return true;
}

static void
s3_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v)
{
	S3State    *st = part->state;
	long		s = resp->status;
	FhS3Answer	a;

	v->error_code = NULL;
	v->error_message = NULL;
	if (st->step == S3_ABORT)
	{
		/* whatever the abort's fate (S3 expires lost uploads by lifecycle) */
		*v = st->final;
		return;
	}
	if (no_response(resp, step_names[st->step], v))
		return;
	/* S3's XML body (answers.c): an error, or CreateMultipartUpload's */
	fh_s3_answer(resp->body.data, resp->body.len, &a);
	if (s < 200 || s >= 300)
	{
		s3_error_verdict(st, step_names[st->step], resp, &a, v);
		return;
	}
	switch (st->step)
	{
		case S3_PUT:
			object_stored(part, st, v);
			break;
		case S3_ERRORS:
			v->outcome = FH_OUTCOME_OK;
			break;
		case S3_CREATE:
			if (!a.has_upload_id || a.upload_id[0] == '\0')
			{
				v->outcome = FH_OUTCOME_RETRY;
				v->error_code = "S3.InvalidResponse";
				v->error_message = "CreateMultipartUpload answered without an UploadId.";
				break;
			}
			st->upload_id = pstrdup(a.upload_id);
			st->step = S3_UPLOAD;
			st->slice = 0;
			v->outcome = FH_OUTCOME_NEXT;
			break;
		case S3_UPLOAD:
			if (resp->etag == NULL)
			{
				v->outcome = FH_OUTCOME_RETRY;
				v->error_code = "S3.InvalidResponse";
				v->error_message = "UploadPart answered without an ETag.";
				break;
			}
			st->etags[st->slice] = resp->etag;
			if (++st->slice == st->nslices)
				st->step = S3_COMPLETE;
			v->outcome = FH_OUTCOME_NEXT;
			break;
		case S3_COMPLETE:
			/* a 200 may still carry an error, sent after a long wait */
			if (a.has_code)
				s3_error_verdict(st, step_names[st->step], resp, &a, v);
			else
				object_stored(part, st, v);
			break;
		case S3_ABORT:
			break;
	}
}

/* ---------- the S3 stage of other destinations ---------- */

/*
 * fh_s3_key
 *		The key of part's object (folder NULL, with the object's extension)
 *		or of part's file in folder, an error output type such as
 *		"manifests" (no extension): the same time and uuid, the default
 *		error prefix's layout <prefix><folder>/yyyy/MM/dd/HH/.  NULL, with
 *		*why, when it cannot be made.
 */
char *
fh_s3_key(void *config, FhPartView *part, const char *folder, char **why)
{
	S3Config   *c = config;
	char	   *key = NULL;

	if (!object_key(c, part, folder, folder ? "" : c->extension, &key, why))
		return NULL;
	return key;
}

/* fh_s3_url: s3://<bucket>/<key>, the URL Redshift's COPY reads */
char *
fh_s3_url(void *config, const char *key)
{
	return psprintf("s3://%s/%s", ((S3Config *) config)->bucket, key);
}

/* fh_s3_put: req becomes a PutObject of data to key, with the object headers */
void
fh_s3_put(void *config, const char *key, const char *data, size_t len,
		  const char *content_type, FhRequest *req)
{
	S3Config   *c = config;
	const char *extra[12];
	int			nextra = object_headers(c, extra);

	sign_request(c, key, req, "PUT", NULL, data, len, extra, nextra, content_type);
}

/* fh_s3_put_classify: the verdict on the response of a PutObject (what) */
void
fh_s3_put_classify(FhResponse *resp, const char *what, FhVerdict *v)
{
	FhS3Answer	a;

	v->error_code = NULL;
	v->error_message = NULL;
	v->delay_ms = 0;
	if (no_response(resp, what, v))
		return;
	if (resp->status >= 200 && resp->status < 300)
	{
		v->outcome = FH_OUTCOME_OK;
		return;
	}
	fh_s3_answer(resp->body.data, resp->body.len, &a);
	s3_error_verdict(NULL, what, resp, &a, v);
}

/* a part fails for good during a multipart upload: abort it first */
static bool
s3_give_up(void *config, FhPartView *part, const FhVerdict *verdict)
{
	S3State    *st = part->state;

	if (st && st->step == S3_ERRORS)
	{
		/* the failed records say that their error records are not in S3 */
		MemoryContext old = MemoryContextSwitchTo(part->cxt);

		for (int i = 0; i < part->nrecords; i++)
			if (!fh_view_pending(part, i) && part->rec_state[i] == FH_REC_FAILED)
				part->rec_verdict[i].error_message =
					psprintf("%s The error record could not be written to S3: %s",
							 part->rec_verdict[i].error_message,
							 verdict->error_message ? verdict->error_message : "");
		MemoryContextSwitchTo(old);
		return false;
	}
	if (st == NULL || st->upload_id == NULL || st->step == S3_ABORT)
		return false;
	st->final = *verdict;
	st->final.outcome = FH_OUTCOME_FAIL;
	st->step = S3_ABORT;
	return true;
}

static char *
s3_target(Jsonb *o)
{
	char	   *bucket = NULL;
	char	   *region = "us-east-1";
	char	   *endpoint = NULL;
	char	   *prefix = "";
	size_t		len;

	fh_jsonb_get_text(o, "bucket", &bucket);
	fh_jsonb_get_text(o, "region", &region);
	fh_jsonb_get_text(o, "prefix", &prefix);
	if (!fh_jsonb_get_text(o, "endpoint", &endpoint))
		endpoint = psprintf("https://s3.%s.amazonaws.com", region);
	len = fh_url_trimmed_len(endpoint);
	if (fh_jsonb_get_bool(o, "path_style", false))
		return psprintf("%.*s/%s/%s", (int) len, endpoint, bucket, prefix);
	/* virtual-hosted: the bucket before the host */
	{
		char	   *sep = strstr(endpoint, "://");

		return psprintf("%.*s%s.%.*s/%s", (int) (sep + 3 - endpoint), endpoint, bucket,
						(int) (len - (sep + 3 - endpoint)), sep + 3, prefix);
	}
}

const FhSink fh_sink_s3 = {
	.name = "s3",
	.options = fh_s3_options,
	.default_retry_duration_s = 86400,
	.default_buffer_interval_ms = 300000,
	.buffer_size_is_hint = true,
	.keeps_processing_errors = true,
	.validate = s3_validate,
	.configure = s3_configure,
	.limits = s3_limits,
	.split = s3_split,
	.encode = s3_encode,
	.classify = s3_classify,
	.give_up = s3_give_up,
	.target = s3_target,
	.error_fields = s3_error_fields,
};
