/*-------------------------------------------------------------------------
 *
 * s3_keys.h
 *	  S3 object keys exactly as Firehose writes them (s3_keys.c): prefix
 *	  and error output prefix validation, their evaluation, and the key
 *	  <evaluated prefix><stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><ext>.
 *
 * This header and s3_keys.c are plain C99 with no PostgreSQL header, so the
 * unit test (test/unit/s3_keys_test.c) builds them without a server.
 * Nothing here keeps global state, reads the clock, draws random numbers
 * or aborts: the time, the time zone's offset and the random strings are
 * inputs, every function returns a status, and a refusal comes with a
 * message that names the offending part.
 *
 * Use:
 *		FhS3KeyLayout *layout;
 *		char		err[FH_S3KEY_ERROR_LEN];
 *
 *		at stream creation (and on every change of the options):
 *		if (fh_s3key_layout_parse(prefix, error_output_prefix,
 *								  &layout, err) != FH_S3KEY_OK)
 *			... report err ...
 *
 *		per batch, with t = the oldest record's arrival time and the zone's
 *		UTC offset at that instant, id = the batch's 128 random bits (kept
 *		with the batch, so a retry writes the same key):
 *		char		rnd[FH_S3KEY_MAX_RANDOM][FH_S3KEY_RANDOM_LEN + 1];
 *		const char *rp[FH_S3KEY_MAX_RANDOM];
 *		char		prefix[FH_S3KEY_PREFIX_BUFSIZE];
 *		char		key[FH_S3KEY_KEY_BUFSIZE];
 *
 *		for (i = 0; i < fh_s3key_nrandom(layout, false); i++)
 *			fh_s3key_random_string(id, i, rnd[i]), rp[i] = rnd[i];
 *		fh_s3key_eval_prefix(layout, t, NULL, rp, n, prefix, err);
 *		fh_s3key_object_key(prefix, stream, version, t, id, ".gz", key, err);
 *
 *		fh_s3key_layout_free(layout);
 *
 * With dynamic partitioning (!{partitionKeyFromQuery:name} and
 * !{partitionKeyFromLambda:name} in the Prefix), the caller evaluates the
 * keys of each record and calls fh_s3key_eval_prefix_keys with their
 * values in the order fh_s3key_partition_key lists them.
 *
 * The failed-record copy goes under the error output prefix: pass the
 * error output type ("http-endpoint-failed", ...) instead of NULL.
 *
 * Behaviour: ../shared/reference/firehose.md sections 3.1-3.3 and 3.8;
 * s3_keys.c says which rule comes from which line.
 *
 *-------------------------------------------------------------------------
 */
#ifndef S3_KEYS_H
#define S3_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Firehose's limits (firehose.md 1.3, 3.2, 3.3) and S3's */
#define FH_S3KEY_MAX_PREFIX_CHARS	1024	/* Prefix as given, in characters */
#define FH_S3KEY_MAX_EVAL_CHARS		512 /* a prefix after evaluation */
#define FH_S3KEY_MAX_KEY_BYTES		1024	/* an S3 object key, UTF-8 */
#define FH_S3KEY_MAX_EXTENSION		128 /* FileExtension */
#define FH_S3KEY_MAX_ZONE_NAME		50	/* CustomTimeZone */
#define FH_S3KEY_RANDOM_LEN			11	/* !{firehose:random-string} */
#define FH_S3KEY_MAX_RANDOM			64	/* random strings in one prefix */
#define FH_S3KEY_UUID_LEN			36	/* 8-4-4-4-12 hex digits */
#define FH_S3KEY_MAX_KEY_NAME		64	/* a partition key's name */

/*
 * Output buffers.  An evaluated prefix has at most 512 characters as Java
 * counts them (UTF-16 units); in UTF-8 that is at most 3 bytes a unit.
 */
#define FH_S3KEY_PREFIX_BUFSIZE		(FH_S3KEY_MAX_EVAL_CHARS * 3 + 1)
#define FH_S3KEY_KEY_BUFSIZE		(FH_S3KEY_MAX_KEY_BYTES + 1)
#define FH_S3KEY_ERROR_LEN			256

typedef enum FhS3KeyStatus
{
	FH_S3KEY_OK = 0,
	FH_S3KEY_EINVAL,			/* an input breaks a rule: see the message */
	FH_S3KEY_ENOMEM,			/* malloc failed */
	FH_S3KEY_ZONE_NAMED			/* fh_s3key_parse_zone: a zone name, which
								 * the caller resolves */
} FhS3KeyStatus;

/* the parsed Prefix and ErrorOutputPrefix of one destination; opaque */
typedef struct FhS3KeyLayout FhS3KeyLayout;

/* the instant a key is made for, and the time zone's offset then */
typedef struct FhS3KeyTime
{
	int64_t		epoch_ms;		/* UTC milliseconds since 1970-01-01 of the
								 * oldest record's arrival */
	int32_t		utc_offset_s;	/* local time minus UTC, in seconds, at that
								 * instant: 0 for UTC, 32400 for Asia/Tokyo */
} FhS3KeyTime;

extern FhS3KeyStatus fh_s3key_layout_parse(const char *prefix,
										   const char *error_output_prefix,
										   FhS3KeyLayout **layout,
										   char error[FH_S3KEY_ERROR_LEN]);
extern void fh_s3key_layout_free(FhS3KeyLayout *layout);
extern int	fh_s3key_nrandom(const FhS3KeyLayout *layout, bool error_output);

extern FhS3KeyStatus fh_s3key_eval_prefix(const FhS3KeyLayout *layout,
										  FhS3KeyTime t,
										  const char *error_output_type,
										  const char *const *random_strings,
										  int nrandom,
										  char out[FH_S3KEY_PREFIX_BUFSIZE],
										  char error[FH_S3KEY_ERROR_LEN]);
extern FhS3KeyStatus fh_s3key_eval_prefix_keys(const FhS3KeyLayout *layout,
											   FhS3KeyTime t,
											   const char *error_output_type,
											   const char *const *random_strings,
											   int nrandom,
											   const char *const *values,
											   int nvalues,
											   char out[FH_S3KEY_PREFIX_BUFSIZE],
											   char error[FH_S3KEY_ERROR_LEN]);
extern int	fh_s3key_npartition_keys(const FhS3KeyLayout *layout);
extern bool fh_s3key_partition_key(const FhS3KeyLayout *layout, int k,
								   char name[FH_S3KEY_MAX_KEY_NAME + 1]);
extern FhS3KeyStatus fh_s3key_check_key_value(const char *value,
											  char error[FH_S3KEY_ERROR_LEN]);
extern FhS3KeyStatus fh_s3key_object_key(const char *evaluated_prefix,
										 const char *stream,
										 int64_t version,
										 FhS3KeyTime t,
										 const unsigned char id[16],
										 const char *extension,
										 char out[FH_S3KEY_KEY_BUFSIZE],
										 char error[FH_S3KEY_ERROR_LEN]);

extern void fh_s3key_uuid(const unsigned char id[16],
						  char out[FH_S3KEY_UUID_LEN + 1]);
extern void fh_s3key_random_string(const unsigned char id[16], int index,
								   char out[FH_S3KEY_RANDOM_LEN + 1]);
extern FhS3KeyStatus fh_s3key_parse_zone(const char *name,
										 int32_t *utc_offset_s,
										 char error[FH_S3KEY_ERROR_LEN]);
extern FhS3KeyStatus fh_s3key_check_extension(const char *extension,
											  char error[FH_S3KEY_ERROR_LEN]);
extern bool fh_s3key_is_error_output_type(const char *type);

#endif							/* S3_KEYS_H */
