/*-------------------------------------------------------------------------
 *
 * os_index.h
 *	  OpenSearch index names as Firehose writes them (os_index.c): the
 *	  IndexRotationPeriod, the index name with its rotation suffix for a
 *	  record's arrival time, and the check of an IndexName.
 *
 * This header and os_index.c are plain C99 with no PostgreSQL header, so the
 * unit test (test/unit/os_index_test.c) builds them without a server.
 * Nothing here keeps global state, reads the clock or the TZ environment,
 * or allocates: the time is an input (UTC epoch milliseconds), and every
 * function returns a status.
 *
 * Use:
 *		FhOsRotation rotation;
 *		const char *why;
 *		char		name[FH_OS_INDEX_BUFSIZE];
 *
 *		at stream creation (and on every change of the options):
 *		if (!fh_os_rotation_parse(period, &rotation))
 *			... report an unknown rotation period ...
 *		if (!fh_os_index_valid(index, &why))
 *			... report why ...
 *
 *		per record, with t = its arrival time in UTC epoch ms:
 *		if (fh_os_index_name(index, rotation, t, name, sizeof(name)) == 0)
 *			... cannot happen for a valid index and a time in the years
 *				1 to 9999 ...
 *
 * Suffixes (UTC): hour "-yyyy-MM-dd-HH", day "-yyyy-MM-dd", week
 * "-yyyy-wNN", month "-yyyy-MM", none "".  Weeks start on Sunday; week 1 is
 * the first full Sunday-to-Saturday week of the year, and the days before
 * the year's first Sunday belong to the previous year's last week, labelled
 * with that year (2016-01-01 -> "-2015-w52").
 *
 * Behaviour: ../shared/reference/firehose.md sections 1.5 and 6;
 * os_index.c says which rule comes from where.
 *
 *-------------------------------------------------------------------------
 */
#ifndef OS_INDEX_H
#define OS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FH_OS_INDEX_MAX_CHARS	80	/* Firehose's IndexName, in characters */
#define FH_OS_INDEX_MAX_BYTES	255 /* OpenSearch's limit on an index name */
#define FH_OS_SUFFIX_MAX		14	/* the longest suffix, "-yyyy-MM-dd-HH" */
/* holds the name of any index that fh_os_index_valid accepts, any suffix */
#define FH_OS_INDEX_BUFSIZE		(FH_OS_INDEX_MAX_BYTES + 1)

/* Firehose's IndexRotationPeriod: NoRotation, OneHour, ... */
typedef enum FhOsRotation
{
	FH_OS_ROTATE_NONE,
	FH_OS_ROTATE_HOUR,
	FH_OS_ROTATE_DAY,
	FH_OS_ROTATE_WEEK,
	FH_OS_ROTATE_MONTH
} FhOsRotation;

/*
 * "none", "hour", "day", "week" or "month" (exactly; case matters) to
 * *out.  False, *out untouched, for anything else, NULL included.
 */
extern bool fh_os_rotation_parse(const char *name, FhOsRotation *out);

/*
 * Writes "<index><suffix>" and its NUL to out and returns its length
 * (without the NUL).  Returns 0, out holding "" when outsize > 0, when the
 * name and its NUL do not fit in outsize bytes, when index is NULL, when r
 * is not a FhOsRotation, or when r rotates and epoch_ms is outside
 * 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z (the suffix then always
 * has its fixed width).  Bytes of out past the NUL are left alone.
 */
extern size_t fh_os_index_name(const char *index, FhOsRotation r,
							   int64_t epoch_ms, char *out, size_t outsize);

/*
 * Whether index is a valid IndexName: 1 to 80 characters (UTF-16 units, as
 * Firehose counts them) of valid UTF-8; at most 255 bytes with the longest
 * suffix appended; no ASCII upper case letter; not starting with '_', '-'
 * or '+'; not "." or ".."; none of \ / * ? " < > | space , # : and no
 * control character.  When it is not, *why (if why is not NULL) is set to
 * a static message naming the broken rule; when it is, *why = NULL.
 */
extern bool fh_os_index_valid(const char *index, const char **why);

#endif							/* OS_INDEX_H */
