/*-------------------------------------------------------------------------
 *
 * os_index.c
 *	  OpenSearch index names as Firehose writes them: the index rotation
 *	  period, "<IndexName><suffix>" for a record's arrival time, and the
 *	  rules an IndexName must follow.
 *
 * Plain C99 with no PostgreSQL header and nothing global, so
 * test/unit/os_index_test.c builds it alone.  The time is an input in UTC
 * epoch milliseconds; the calendar is computed here (proleptic Gregorian,
 * H. Hinnant's civil_from_days, http://howardhinnant.github.io/
 * date_algorithms.html), not with gmtime, so neither TZ nor the C
 * library's range of time_t matters.
 *
 * The rules, with their source (ref = ../shared/reference/firehose.md):
 *	- IndexRotationPeriod NoRotation, OneHour, OneDay, OneWeek, OneMonth
 *	  (ref 1.5), named none, hour, day, week, month here;
 *	- the suffix comes from the record's arrival time in UTC, and for
 *	  IndexName myindex and 2016-02-25T13:00Z is "" / "-2016-02-25-13" /
 *	  "-2016-02-25" / "-2016-w08" / "-2016-02" (ref 6, "Index rotation");
 *	- weeks start on Sunday, "week 1 = first week containing a Saturday"
 *	  (ref 6): the first full Sunday-to-Saturday week, which is what makes
 *	  the reference's 2016-02-25 (a Thursday; 2016's first Sunday is
 *	  January 3) fall in week 08.  The days before a year's first Sunday
 *	  are in the last week of the previous year and carry that year's
 *	  number: 2016-01-01 is "-2015-w52".  This is the week of C's %U,
 *	  with %U's week 0 taken as the previous year's last week; weeks run
 *	  from 01 to 53 (2017-12-31, a Sunday, is 2017-w53);
 *	- IndexName has 1 to 80 characters (ref 1.5), counted as the service
 *	  (Java) counts them, in UTF-16 units, as s3_keys.c does;
 *	- OpenSearch's own rules for an index name (MetadataCreateIndexService.
 *	  validateIndexOrAliasName and validateIndexName): at most 255 bytes,
 *	  lower case, not starting with '_', '-' or '+', not "." or "..", and
 *	  none of \ / * ? " < > | space , (Strings.INVALID_FILENAME_CHARS)
 *	  nor '#' nor ':'.  The byte limit applies to the rotated name, so the
 *	  IndexName is checked with room for the longest suffix, 14 bytes.
 *
 * Where the sources are silent, and what is done:
 *	- "lower case": OpenSearch compares the name with its Java
 *	  toLowerCase(Locale.ROOT); only ASCII A-Z is refused here (no Unicode
 *	  tables in this file), so a name with, say, 'É' passes here and is
 *	  refused by the cluster at delivery;
 *	- the name must be valid UTF-8 (OpenSearch reads it as a Java string)
 *	  without control characters (U+0000-U+001F, U+007F): the name goes
 *	  into every bulk request's action line, and Firehose's API takes no
 *	  line terminator in it either;
 *	- with the 80-unit limit an IndexName has at most 240 bytes (80
 *	  three-byte characters; a four-byte one is two units), so 240 + 14 is
 *	  within 255: the byte check only decides which message a too long
 *	  name of multi-byte characters gets.  It is kept so that a change of
 *	  either limit stays right;
 *	- the suffix needs the year in four digits, so a rotating name is made
 *	  only for the years 0001 to 9999 (as s3_keys.c); the first days of
 *	  0001, before its first Sunday, are in week "0000-w53".
 *
 *-------------------------------------------------------------------------
 */
#include "os_index.h"

#include <string.h>

#include "utf8.h"

#define MS_PER_DAY		INT64_C(86400000)
#define MS_PER_HOUR		INT64_C(3600000)
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z, in epoch ms */
#define MIN_EPOCH_MS	INT64_C(-62135596800000)
#define MAX_EPOCH_MS	INT64_C(253402300799999)

/* ---------- rotation periods ---------- */

static const struct
{
	const char *name;
	FhOsRotation rotation;
}			rotations[] = {
	{"none", FH_OS_ROTATE_NONE},
	{"hour", FH_OS_ROTATE_HOUR},
	{"day", FH_OS_ROTATE_DAY},
	{"week", FH_OS_ROTATE_WEEK},
	{"month", FH_OS_ROTATE_MONTH},
};

bool
fh_os_rotation_parse(const char *name, FhOsRotation *out)
{
	size_t		i;

	if (name == NULL)
		return false;
	for (i = 0; i < sizeof(rotations) / sizeof(rotations[0]); i++)
	{
		if (strcmp(name, rotations[i].name) == 0)
		{
			if (out)
				*out = rotations[i].rotation;
			return true;
		}
	}
	return false;
}

/* ---------- calendar ---------- */

typedef struct CivilDay
{
	int			year;
	int			month;			/* 1-12 */
	int			day;			/* 1-31 */
	int			yday;			/* 0-365, days since January 1 */
	int			wday;			/* 0-6, Sunday = 0 */
} CivilDay;

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* the date of days since 1970-01-01 (negative before it) */
static void
civil_from_days(int64_t days, CivilDay *c)
{
	static const int cumdays[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243,
	273, 304, 334};
	int64_t		z = days + 719468;
	int64_t		era;
	int64_t		doe;
	int64_t		yoe;
	int64_t		doy;
	int64_t		mp;

	/* 1970-01-01 was a Thursday (4) */
	c->wday = (int) (((days % 7) + 7 + 4) % 7);

	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	c->day = (int) (doy - (153 * mp + 2) / 5 + 1);
	c->month = (int) (mp < 10 ? mp + 3 : mp - 9);
	c->year = (int) (yoe + era * 400 + (c->month <= 2));
	c->yday = cumdays[c->month - 1] + c->day - 1 +
		(c->month > 2 && is_leap(c->year) ? 1 : 0);
}

/*
 * The Sunday-based week of a day: *week_year and *week (1-53).  %U is
 * (yday + 7 - wday) / 7, 0 before the year's first Sunday; such a day
 * takes the week of December 31 of the year before, never 0 (a first
 * Sunday is at the latest January 7).
 */
static void
sunday_week(int64_t days, int *week_year, int *week)
{
	CivilDay	c;
	int			u;

	civil_from_days(days, &c);
	u = (c.yday + 7 - c.wday) / 7;
	if (u == 0)
	{
		civil_from_days(days - c.yday - 1, &c);
		u = (c.yday + 7 - c.wday) / 7;
	}
	*week_year = c.year;
	*week = u;
}

/* v (>= 0) in exactly width decimal digits at p; returns p + width */
static char *
put_digits(char *p, int v, int width)
{
	int			i;

	for (i = width - 1; i >= 0; i--)
	{
		p[i] = (char) ('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/*
 * The suffix of rotation r at epoch_ms into suffix (NUL-terminated);
 * false for an unknown rotation or a time outside the years 1 to 9999.
 */
static bool
make_suffix(FhOsRotation r, int64_t epoch_ms, char suffix[FH_OS_SUFFIX_MAX + 1])
{
	char	   *p = suffix;
	int64_t		days;
	int64_t		ms;
	CivilDay	c;

	if (r == FH_OS_ROTATE_NONE)
	{
		suffix[0] = '\0';
		return true;
	}
	if (r != FH_OS_ROTATE_HOUR && r != FH_OS_ROTATE_DAY &&
		r != FH_OS_ROTATE_WEEK && r != FH_OS_ROTATE_MONTH)
		return false;
	if (epoch_ms < MIN_EPOCH_MS || epoch_ms > MAX_EPOCH_MS)
		return false;

	days = epoch_ms / MS_PER_DAY;
	ms = epoch_ms % MS_PER_DAY;
	if (ms < 0)
	{
		ms += MS_PER_DAY;
		days--;
	}

	*p++ = '-';
	if (r == FH_OS_ROTATE_WEEK)
	{
		int			year;
		int			week;

		sunday_week(days, &year, &week);
		p = put_digits(p, year, 4);
		*p++ = '-';
		*p++ = 'w';
		p = put_digits(p, week, 2);
	}
	else
	{
		civil_from_days(days, &c);
		p = put_digits(p, c.year, 4);
		*p++ = '-';
		p = put_digits(p, c.month, 2);
		if (r != FH_OS_ROTATE_MONTH)
		{
			*p++ = '-';
			p = put_digits(p, c.day, 2);
		}
		if (r == FH_OS_ROTATE_HOUR)
		{
			*p++ = '-';
			p = put_digits(p, (int) (ms / MS_PER_HOUR), 2);
		}
	}
	*p = '\0';
	return true;
}

size_t
fh_os_index_name(const char *index, FhOsRotation r, int64_t epoch_ms,
				 char *out, size_t outsize)
{
	char		suffix[FH_OS_SUFFIX_MAX + 1];
	size_t		ilen;
	size_t		slen;

	if (out == NULL || outsize == 0)
		return 0;
	out[0] = '\0';
	if (index == NULL || !make_suffix(r, epoch_ms, suffix))
		return 0;
	ilen = strlen(index);
	slen = strlen(suffix);
	if (ilen >= outsize || slen >= outsize - ilen)
		return 0;
	memcpy(out, index, ilen);
	memcpy(out + ilen, suffix, slen + 1);
	return ilen + slen;
}

/* ---------- index names ---------- */

/* the characters OpenSearch refuses, each with its message */
static const struct
{
	char		c;
	const char *why;
}			forbidden[] = {
	{'\\', "index name must not contain '\\'"},
	{'/', "index name must not contain '/'"},
	{'*', "index name must not contain '*'"},
	{'?', "index name must not contain '?'"},
	{'"', "index name must not contain '\"'"},
	{'<', "index name must not contain '<'"},
	{'>', "index name must not contain '>'"},
	{'|', "index name must not contain '|'"},
	{' ', "index name must not contain a space"},
	{',', "index name must not contain ','"},
	{'#', "index name must not contain '#'"},
	{':', "index name must not contain ':'"},
};

static bool
refuse(const char **why, const char *message)
{
	if (why)
		*why = message;
	return false;
}

bool
fh_os_index_valid(const char *index, const char **why)
{
	const unsigned char *s = (const unsigned char *) index;
	size_t		len;
	size_t		bytes = 0;
	size_t		units = 0;

	if (why)
		*why = NULL;
	if (index == NULL || index[0] == '\0')
		return refuse(why, "index name is empty");

	len = strlen(index);
	while (bytes < len)
	{
		unsigned char c = s[bytes];
		uint32_t	cp;
		int			n;
		size_t		k;

		if (c < 0x20 || c == 0x7f)
			return refuse(why, "index name must not contain control characters");
		if (c >= 'A' && c <= 'Z')
			return refuse(why, "index name must be lower case");
		for (k = 0; k < sizeof(forbidden) / sizeof(forbidden[0]); k++)
			if ((char) c == forbidden[k].c)
				return refuse(why, forbidden[k].why);
		n = fh_utf8_decode(s + bytes, len - bytes, &cp);
		if (n == 0)
			return refuse(why, "index name is not valid UTF-8");
		bytes += (size_t) n;
		units += cp >= 0x10000 ? 2 : 1;	/* UTF-16 units, as Java counts */
	}

	if (strcmp(index, ".") == 0 || strcmp(index, "..") == 0)
		return refuse(why, "index name must not be \".\" or \"..\"");
	if (index[0] == '_' || index[0] == '-' || index[0] == '+')
		return refuse(why, "index name must not start with '_', '-' or '+'");
	if (bytes > FH_OS_INDEX_MAX_BYTES - FH_OS_SUFFIX_MAX)
		return refuse(why, "index name must leave room for the rotation suffix "
					  "(14 bytes) within OpenSearch's 255 bytes");
	if (units > FH_OS_INDEX_MAX_CHARS)
		return refuse(why, "index name must have at most 80 characters");
	return true;
}
