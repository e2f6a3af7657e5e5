/*-------------------------------------------------------------------------
 *
 * os_index_test.c
 *	  Unit test of src/os_index.c: Firehose's OpenSearch index rotation
 *	  (the name "<IndexName><suffix>" for an instant), the rotation period
 *	  names and the IndexName rules.
 *
 * Expected values: the reference's example (../shared/reference/firehose.md
 * section 6: myindex at 2016-02-25T13:00Z), full strings worked out by hand
 * for the week rule, and a table of instants whose calendar fields were
 * computed with Python's datetime and checked, row by row, with GNU
 * `date -u -d @<seconds> '+%Y %m %d %H %U'`.  The table holds %U (C's
 * Sunday-based week: week 1 starts on the year's first Sunday, the days
 * before it are week 0) and, for week 0, %U of December 31 of the year
 * before, which is the week such a day belongs to; the expected suffixes
 * are built from those fields here, with snprintf.  Year 0 (for the first
 * days of 0001) is outside Python's range: `date -u -d @-62135596801 +%U`
 * gives 53 for 0000-12-31.
 *
 * Output: a FAIL line for each failing check with what was expected and
 * what came back, then "osindex: N of M checks pass"; exit status 1 when
 * any check failed.
 *
 *-------------------------------------------------------------------------
 */
#include "os_index.h"

#include <stdio.h>
#include <string.h>

#define CHECK_NAME "osindex"
#include "check.h"

#define T_REF			INT64_C(1456405200000)	/* 2016-02-25T13:00:00Z */
#define T_MIN			INT64_C(-62135596800000)	/* 0001-01-01T00:00Z */
#define T_MAX			INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */

static const char *const rotation_names[] = {"none", "hour", "day", "week", "month"};

/*
 * fh_os_index_name(index, r, t) into a roomy buffer: expect the string
 * expected and its length, or with expected NULL a refusal (0 and "").
 */
static void
check_name(const char *index, FhOsRotation r, int64_t t, const char *expected)
{
	char		out[FH_OS_INDEX_BUFSIZE + 64];
	char		what[200];
	size_t		n;

	memset(out, 'X', sizeof(out));
	n = fh_os_index_name(index, r, t, out, sizeof(out));
	snprintf(what, sizeof(what), "name of %s, rotation %s, at %lld ms",
			 index ? index : "(null)",
			 (unsigned) r < 5 ? rotation_names[r] : "(invalid)", (long long) t);
	if (expected == NULL)
		check(n == 0 && out[0] == '\0', what, "0 and \"\"", out);
	else
		check(n == strlen(expected) && strcmp(out, expected) == 0, what,
			  expected, out);
}

/* ---------- the reference's example and the week rule by hand ---------- */

static void
check_examples(void)
{
	/* firehose.md section 6, IndexName myindex, 2016-02-25T13:00Z */
	check_name("myindex", FH_OS_ROTATE_NONE, T_REF, "myindex");
	check_name("myindex", FH_OS_ROTATE_HOUR, T_REF, "myindex-2016-02-25-13");
	check_name("myindex", FH_OS_ROTATE_DAY, T_REF, "myindex-2016-02-25");
	check_name("myindex", FH_OS_ROTATE_WEEK, T_REF, "myindex-2016-w08");
	check_name("myindex", FH_OS_ROTATE_MONTH, T_REF, "myindex-2016-02");

	/* 2016-01-01 (Friday) is before 2016's first Sunday, January 3 */
	check_name("myindex", FH_OS_ROTATE_WEEK, INT64_C(1451606400000),
			   "myindex-2015-w52");
	/* 2016-01-03T00:00Z, a Sunday: week 1 */
	check_name("myindex", FH_OS_ROTATE_WEEK, INT64_C(1451779200000),
			   "myindex-2016-w01");
	/* 2017-01-01, a Sunday, starts week 1 */
	check_name("myindex", FH_OS_ROTATE_WEEK, INT64_C(1483228800000),
			   "myindex-2017-w01");
	/* 2017-12-31, a Sunday, starts 2017's 53rd week, which 2018-01-01 ends in */
	check_name("myindex", FH_OS_ROTATE_WEEK, INT64_C(1514678400000),
			   "myindex-2017-w53");
	check_name("myindex", FH_OS_ROTATE_WEEK, INT64_C(1514764800000),
			   "myindex-2017-w53");
	/* the epoch, a Thursday, and the millisecond before it */
	check_name("myindex", FH_OS_ROTATE_WEEK, 0, "myindex-1969-w52");
	check_name("myindex", FH_OS_ROTATE_HOUR, -1, "myindex-1969-12-31-23");
	check_name("myindex", FH_OS_ROTATE_HOUR, 0, "myindex-1970-01-01-00");
	/* the ends of the range: 0001-01-01 is a Monday, in 0000's week 53 */
	check_name("a", FH_OS_ROTATE_WEEK, T_MIN, "a-0000-w53");
	check_name("a", FH_OS_ROTATE_HOUR, T_MIN, "a-0001-01-01-00");
	check_name("a", FH_OS_ROTATE_HOUR, T_MAX, "a-9999-12-31-23");
	check_name("a", FH_OS_ROTATE_WEEK, T_MAX, "a-9999-w52");
}

/* ---------- every boundary, from the table ---------- */

typedef struct Instant
{
	int64_t		t;
	int			year;			/* %Y %m %d %H */
	int			month;
	int			day;
	int			hour;
	int			u;				/* %U */
	int			prev_u;			/* %U of December 31 of year - 1 if u == 0 */
} Instant;

static const Instant instants[] = {
	/* the last millisecond of an hour, day, month, year, and the next */
	{INT64_C(1456408799999), 2016, 2, 25, 13, 8, -1},	/* 2016-02-25T13:59:59.999 */
	{INT64_C(1456408800000), 2016, 2, 25, 14, 8, -1},	/* 2016-02-25T14:00:00.000 */
	{INT64_C(1456444799999), 2016, 2, 25, 23, 8, -1},	/* 2016-02-25T23:59:59.999 */
	{INT64_C(1456444800000), 2016, 2, 26, 0, 8, -1},	/* 2016-02-26T00:00:00.000 */
	{INT64_C(1454284799999), 2016, 1, 31, 23, 5, -1},	/* 2016-01-31T23:59:59.999 */
	{INT64_C(1454284800000), 2016, 2, 1, 0, 5, -1},	/* 2016-02-01T00:00:00.000 */
	{INT64_C(1451606399999), 2015, 12, 31, 23, 52, -1},	/* 2015-12-31T23:59:59.999 */
	{INT64_C(1451606400000), 2016, 1, 1, 0, 0, 52},	/* 2016-01-01T00:00:00.000 */
	{INT64_C(946684799999), 1999, 12, 31, 23, 52, -1},	/* 1999-12-31T23:59:59.999 */
	{INT64_C(946684800000), 2000, 1, 1, 0, 0, 52},	/* 2000-01-01T00:00:00.000 */
	{INT64_C(-1), 1969, 12, 31, 23, 52, -1},	/* 1969-12-31T23:59:59.999 */
	{INT64_C(0), 1970, 1, 1, 0, 0, 52},	/* 1970-01-01T00:00:00.000 */
	{INT64_C(2147486399999), 2038, 1, 19, 3, 3, -1},	/* 2038-01-19T03:59:59.999, */
	{INT64_C(2147486400000), 2038, 1, 19, 4, 3, -1},	/* 2038-01-19T04:00, past 2^31 s */
	{INT64_C(-23215049511000), 1234, 5, 6, 7, 18, -1},	/* 1234-05-06T07:08:09.000 */

	/* leap days, and 1900 and 2100 without one */
	{INT64_C(1456703999999), 2016, 2, 28, 23, 9, -1},	/* 2016-02-28T23:59:59.999 */
	{INT64_C(1456704000000), 2016, 2, 29, 0, 9, -1},	/* 2016-02-29T00:00:00.000 */
	{INT64_C(1456790399999), 2016, 2, 29, 23, 9, -1},	/* 2016-02-29T23:59:59.999 */
	{INT64_C(1456790400000), 2016, 3, 1, 0, 9, -1},	/* 2016-03-01T00:00:00.000 */
	{INT64_C(951782399999), 2000, 2, 28, 23, 9, -1},	/* 2000-02-28T23:59:59.999 */
	{INT64_C(951782400000), 2000, 2, 29, 0, 9, -1},	/* 2000-02-29T00:00:00.000 */
	{INT64_C(951868799999), 2000, 2, 29, 23, 9, -1},	/* 2000-02-29T23:59:59.999 */
	{INT64_C(951868800000), 2000, 3, 1, 0, 9, -1},	/* 2000-03-01T00:00:00.000 */
	{INT64_C(-2203891200001), 1900, 2, 28, 23, 8, -1},	/* 1900-02-28T23:59:59.999 */
	{INT64_C(-2203891200000), 1900, 3, 1, 0, 8, -1},	/* 1900-03-01T00:00:00.000 */
	{INT64_C(4107542399999), 2100, 2, 28, 23, 9, -1},	/* 2100-02-28T23:59:59.999 */
	{INT64_C(4107542400000), 2100, 3, 1, 0, 9, -1},	/* 2100-03-01T00:00:00.000 */

	/* Saturday 23:59:59.999 to Sunday 00:00 */
	{INT64_C(1456012799999), 2016, 2, 20, 23, 7, -1},	/* 2016-02-20T23:59:59.999 Sat */
	{INT64_C(1456012800000), 2016, 2, 21, 0, 8, -1},	/* 2016-02-21T00:00:00.000 Sun */
	{INT64_C(1451779199999), 2016, 1, 2, 23, 0, 52},	/* 2016-01-02T23:59:59.999 Sat */
	{INT64_C(1451779200000), 2016, 1, 3, 0, 1, -1},	/* 2016-01-03T00:00:00.000 Sun */
	{INT64_C(1514678399999), 2017, 12, 30, 23, 52, -1},	/* 2017-12-30T23:59:59.999 Sat */
	{INT64_C(1514678400000), 2017, 12, 31, 0, 53, -1},	/* 2017-12-31T00:00:00.000 Sun */
	{INT64_C(1515283199999), 2018, 1, 6, 23, 0, 53},	/* 2018-01-06T23:59:59.999 Sat */
	{INT64_C(1515283200000), 2018, 1, 7, 0, 1, -1},	/* 2018-01-07T00:00:00.000 Sun */
	{INT64_C(-345600001), 1969, 12, 27, 23, 51, -1},	/* 1969-12-27T23:59:59.999 Sat */
	{INT64_C(-345600000), 1969, 12, 28, 0, 52, -1},	/* 1969-12-28T00:00:00.000 Sun */

	/*
	 * January 1 on each weekday: the millisecond before it, it, and the
	 * Saturday-to-Sunday change into the year's first Sunday
	 */
	/* Sunday: 2017, 2012, 1899 */
	{INT64_C(1483228799999), 2016, 12, 31, 23, 52, -1},	/* 2016-12-31T23:59:59.999 */
	{INT64_C(1483228800000), 2017, 1, 1, 0, 1, -1},	/* 2017-01-01T00:00:00.000 */
	{INT64_C(1325375999999), 2011, 12, 31, 23, 52, -1},	/* 2011-12-31T23:59:59.999 */
	{INT64_C(1325376000000), 2012, 1, 1, 0, 1, -1},	/* 2012-01-01T00:00:00.000 */
	{INT64_C(-2240524800001), 1898, 12, 31, 23, 52, -1},	/* 1898-12-31T23:59:59.999 */
	{INT64_C(-2240524800000), 1899, 1, 1, 0, 1, -1},	/* 1899-01-01T00:00:00.000 */
	/* Monday: 2018, 1601, 1900, 0001 */
	{INT64_C(1514764799999), 2017, 12, 31, 23, 53, -1},	/* 2017-12-31T23:59:59.999 */
	{INT64_C(1514764800000), 2018, 1, 1, 0, 0, 53},	/* 2018-01-01T00:00:00.000 */
	{INT64_C(-11644473600001), 1600, 12, 31, 23, 53, -1},	/* 1600-12-31T23:59:59.999 */
	{INT64_C(-11644473600000), 1601, 1, 1, 0, 0, 53},	/* 1601-01-01T00:00:00.000 */
	{INT64_C(-11643955200001), 1601, 1, 6, 23, 0, 53},	/* 1601-01-06T23:59:59.999 */
	{INT64_C(-11643955200000), 1601, 1, 7, 0, 1, -1},	/* 1601-01-07T00:00:00.000 */
	{INT64_C(-2208988800001), 1899, 12, 31, 23, 53, -1},	/* 1899-12-31T23:59:59.999 */
	{INT64_C(-2208988800000), 1900, 1, 1, 0, 0, 53},	/* 1900-01-01T00:00:00.000 */
	{INT64_C(-2208470400001), 1900, 1, 6, 23, 0, 53},	/* 1900-01-06T23:59:59.999 */
	{INT64_C(-2208470400000), 1900, 1, 7, 0, 1, -1},	/* 1900-01-07T00:00:00.000 */
	{INT64_C(-62135596800000), 1, 1, 1, 0, 0, 53},	/* 0001-01-01T00:00:00.000 */
	{INT64_C(-62135078400001), 1, 1, 6, 23, 0, 53},	/* 0001-01-06T23:59:59.999 */
	{INT64_C(-62135078400000), 1, 1, 7, 0, 1, -1},	/* 0001-01-07T00:00:00.000 */
	/* Tuesday: 2019 */
	{INT64_C(1546300799999), 2018, 12, 31, 23, 52, -1},	/* 2018-12-31T23:59:59.999 */
	{INT64_C(1546300800000), 2019, 1, 1, 0, 0, 52},	/* 2019-01-01T00:00:00.000 */
	{INT64_C(1546732799999), 2019, 1, 5, 23, 0, 52},	/* 2019-01-05T23:59:59.999 */
	{INT64_C(1546732800000), 2019, 1, 6, 0, 1, -1},	/* 2019-01-06T00:00:00.000 */
	/* Wednesday: 2020 */
	{INT64_C(1577836799999), 2019, 12, 31, 23, 52, -1},	/* 2019-12-31T23:59:59.999 */
	{INT64_C(1577836800000), 2020, 1, 1, 0, 0, 52},	/* 2020-01-01T00:00:00.000 */
	{INT64_C(1578182399999), 2020, 1, 4, 23, 0, 52},	/* 2020-01-04T23:59:59.999 */
	{INT64_C(1578182400000), 2020, 1, 5, 0, 1, -1},	/* 2020-01-05T00:00:00.000 */
	/* Thursday: 2015 */
	{INT64_C(1420070399999), 2014, 12, 31, 23, 52, -1},	/* 2014-12-31T23:59:59.999 */
	{INT64_C(1420070400000), 2015, 1, 1, 0, 0, 52},	/* 2015-01-01T00:00:00.000 */
	{INT64_C(1420329599999), 2015, 1, 3, 23, 0, 52},	/* 2015-01-03T23:59:59.999 */
	{INT64_C(1420329600000), 2015, 1, 4, 0, 1, -1},	/* 2015-01-04T00:00:00.000 */
	/* Friday: 2016 (above), 9999 */
	{INT64_C(253370764799999), 9998, 12, 31, 23, 52, -1},	/* 9998-12-31T23:59:59.999 */
	{INT64_C(253370764800000), 9999, 1, 1, 0, 0, 52},	/* 9999-01-01T00:00:00.000 */
	{INT64_C(253370937599999), 9999, 1, 2, 23, 0, 52},	/* 9999-01-02T23:59:59.999 */
	{INT64_C(253370937600000), 9999, 1, 3, 0, 1, -1},	/* 9999-01-03T00:00:00.000 */
	{INT64_C(253402300799999), 9999, 12, 31, 23, 52, -1},	/* 9999-12-31T23:59:59.999 */
	/* Saturday: 2022, 2028, 1600, 2400 */
	{INT64_C(1640995199999), 2021, 12, 31, 23, 52, -1},	/* 2021-12-31T23:59:59.999 */
	{INT64_C(1640995200000), 2022, 1, 1, 0, 0, 52},	/* 2022-01-01T00:00:00.000 */
	{INT64_C(1641081599999), 2022, 1, 1, 23, 0, 52},	/* 2022-01-01T23:59:59.999 */
	{INT64_C(1641081600000), 2022, 1, 2, 0, 1, -1},	/* 2022-01-02T00:00:00.000 */
	{INT64_C(1830297599999), 2027, 12, 31, 23, 52, -1},	/* 2027-12-31T23:59:59.999 */
	{INT64_C(1830297600000), 2028, 1, 1, 0, 0, 52},	/* 2028-01-01T00:00:00.000 */
	{INT64_C(1830383999999), 2028, 1, 1, 23, 0, 52},	/* 2028-01-01T23:59:59.999 */
	{INT64_C(1830384000000), 2028, 1, 2, 0, 1, -1},	/* 2028-01-02T00:00:00.000 */
	{INT64_C(-11676096000001), 1599, 12, 31, 23, 52, -1},	/* 1599-12-31T23:59:59.999 */
	{INT64_C(-11676096000000), 1600, 1, 1, 0, 0, 52},	/* 1600-01-01T00:00:00.000 */
	{INT64_C(-11676009600001), 1600, 1, 1, 23, 0, 52},	/* 1600-01-01T23:59:59.999 */
	{INT64_C(-11676009600000), 1600, 1, 2, 0, 1, -1},	/* 1600-01-02T00:00:00.000 */
	{INT64_C(13569465599999), 2399, 12, 31, 23, 52, -1},	/* 2399-12-31T23:59:59.999 */
	{INT64_C(13569465600000), 2400, 1, 1, 0, 0, 52},	/* 2400-01-01T00:00:00.000 */
	{INT64_C(13569551999999), 2400, 1, 1, 23, 0, 52},	/* 2400-01-01T23:59:59.999 */
	{INT64_C(13569552000000), 2400, 1, 2, 0, 1, -1},	/* 2400-01-02T00:00:00.000 */
};

static void
check_instants(void)
{
	size_t		i;

	for (i = 0; i < sizeof(instants) / sizeof(instants[0]); i++)
	{
		const Instant *in = &instants[i];
		char		expected[64];

		snprintf(expected, sizeof(expected), "logs-%04d-%02d-%02d-%02d",
				 in->year, in->month, in->day, in->hour);
		check_name("logs", FH_OS_ROTATE_HOUR, in->t, expected);
		snprintf(expected, sizeof(expected), "logs-%04d-%02d-%02d",
				 in->year, in->month, in->day);
		check_name("logs", FH_OS_ROTATE_DAY, in->t, expected);
		snprintf(expected, sizeof(expected), "logs-%04d-%02d",
				 in->year, in->month);
		check_name("logs", FH_OS_ROTATE_MONTH, in->t, expected);
		if (in->u > 0)
			snprintf(expected, sizeof(expected), "logs-%04d-w%02d",
					 in->year, in->u);
		else
			snprintf(expected, sizeof(expected), "logs-%04d-w%02d",
					 in->year - 1, in->prev_u);
		check_name("logs", FH_OS_ROTATE_WEEK, in->t, expected);
		check_name("logs", FH_OS_ROTATE_NONE, in->t, "logs");
	}
}

/* ---------- refusals of fh_os_index_name, and small buffers ---------- */

static void
check_range_and_buffers(void)
{
	static const FhOsRotation rotating[] = {FH_OS_ROTATE_HOUR, FH_OS_ROTATE_DAY,
	FH_OS_ROTATE_WEEK, FH_OS_ROTATE_MONTH};
	char		out[32];
	char		big[FH_OS_INDEX_BUFSIZE];
	char		index[400];
	size_t		i;
	size_t		n;
	int			k;

	/* outside the years 1 to 9999: no rotating name; without rotation, any */
	for (i = 0; i < sizeof(rotating) / sizeof(rotating[0]); i++)
	{
		check_name("myindex", rotating[i], T_MIN - 1, NULL);
		check_name("myindex", rotating[i], T_MAX + 1, NULL);
		check_name("myindex", rotating[i], INT64_MIN, NULL);
		check_name("myindex", rotating[i], INT64_MAX, NULL);
	}
	check_name("myindex", FH_OS_ROTATE_NONE, INT64_MIN, "myindex");
	check_name("myindex", FH_OS_ROTATE_NONE, INT64_MAX, "myindex");

	/* not a rotation, no index */
	check_name("myindex", (FhOsRotation) 5, T_REF, NULL);
	check_name("myindex", (FhOsRotation) (-1), T_REF, NULL);
	check_name(NULL, FH_OS_ROTATE_DAY, T_REF, NULL);
	check_name(NULL, FH_OS_ROTATE_NONE, T_REF, NULL);

	/* "myindex-2016-02-25" is 18 bytes: it needs 19 */
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("myindex", FH_OS_ROTATE_DAY, T_REF, out, 19);
	check(n == 18 && strcmp(out, "myindex-2016-02-25") == 0 && out[19] == 'X',
		  "day name in exactly 19 bytes", "myindex-2016-02-25", out);
	for (k = 18; k >= 1; k -= (k > 12 ? 1 : 4))
	{
		char		what[80];
		int			untouched = 1;
		int			j;

		memset(out, 'X', sizeof(out));
		n = fh_os_index_name("myindex", FH_OS_ROTATE_DAY, T_REF, out, (size_t) k);
		for (j = 1; j < (int) sizeof(out); j++)
			untouched &= out[j] == 'X';
		snprintf(what, sizeof(what), "day name refused in %d bytes, out \"\", rest untouched", k);
		check(n == 0 && out[0] == '\0' && untouched, what, "0, \"\"", out);
	}
	/* the hour suffix, 14 bytes: "a-2016-02-25-13" needs 16 */
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("a", FH_OS_ROTATE_HOUR, T_REF, out, 16);
	check(n == 15 && strcmp(out, "a-2016-02-25-13") == 0,
		  "hour name in exactly 16 bytes", "a-2016-02-25-13", out);
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("a", FH_OS_ROTATE_HOUR, T_REF, out, 15);
	check(n == 0 && out[0] == '\0' && out[1] == 'X',
		  "hour name refused in 15 bytes", "0, \"\"", out);
	/* no rotation: the index and its NUL */
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("myindex", FH_OS_ROTATE_NONE, T_REF, out, 8);
	check(n == 7 && strcmp(out, "myindex") == 0 && out[8] == 'X',
		  "unrotated name in exactly 8 bytes", "myindex", out);
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("myindex", FH_OS_ROTATE_NONE, T_REF, out, 7);
	check(n == 0 && out[0] == '\0' && out[1] == 'X',
		  "unrotated name refused in 7 bytes", "0, \"\"", out);
	/* outsize 0 writes nothing; no buffer at all */
	memset(out, 'X', sizeof(out));
	n = fh_os_index_name("myindex", FH_OS_ROTATE_NONE, T_REF, out, 0);
	check(n == 0 && out[0] == 'X', "outsize 0: 0, nothing written", NULL, NULL);
	n = fh_os_index_name("myindex", FH_OS_ROTATE_NONE, T_REF, NULL, 100);
	check(n == 0, "no buffer: 0", NULL, NULL);

	/*
	 * FH_OS_INDEX_BUFSIZE holds the longest valid index, 80 three-byte
	 * characters (240 bytes), with the hour suffix: 254 bytes
	 */
	index[0] = '\0';
	for (k = 0; k < 80; k++)
		strcat(index, "\xe6\x97\xa5");
	n = fh_os_index_name(index, FH_OS_ROTATE_HOUR, T_REF, big, sizeof(big));
	check(n == 254 && memcmp(big, index, 240) == 0 &&
		  strcmp(big + 240, "-2016-02-25-13") == 0,
		  "240-byte index with the hour suffix in FH_OS_INDEX_BUFSIZE", NULL, NULL);
	check(fh_os_index_valid(index, NULL), "that 240-byte index is valid", NULL, NULL);
}

/* ---------- rotation names ---------- */

static void
check_rotation_names(void)
{
	static const struct
	{
		const char *name;
		FhOsRotation r;
	}			good[] = {
		{"none", FH_OS_ROTATE_NONE},
		{"hour", FH_OS_ROTATE_HOUR},
		{"day", FH_OS_ROTATE_DAY},
		{"week", FH_OS_ROTATE_WEEK},
		{"month", FH_OS_ROTATE_MONTH},
	};
	static const char *const bad[] = {
		"", "None", "NONE", "Day", "NoRotation", "OneHour", "OneDay",
		"OneWeek", "OneMonth", "days", "hours", "weekly", "d", " day",
		"day ", "month\n", "mon", "year", "minute",
	};
	size_t		i;
	FhOsRotation r;
	char		what[80];

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		/* start from a value the name does not give */
		r = good[i].r == FH_OS_ROTATE_NONE ? FH_OS_ROTATE_MONTH : FH_OS_ROTATE_NONE;
		snprintf(what, sizeof(what), "rotation \"%s\" parses to its value", good[i].name);
		check(fh_os_rotation_parse(good[i].name, &r) && r == good[i].r, what,
			  NULL, NULL);
	}
	check(fh_os_rotation_parse("week", NULL), "rotation parse with out NULL",
		  NULL, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		r = FH_OS_ROTATE_WEEK;
		snprintf(what, sizeof(what), "rotation \"%s\" refused, out untouched", bad[i]);
		check(!fh_os_rotation_parse(bad[i], &r) && r == FH_OS_ROTATE_WEEK, what,
			  NULL, NULL);
	}
	r = FH_OS_ROTATE_WEEK;
	check(!fh_os_rotation_parse(NULL, &r) && r == FH_OS_ROTATE_WEEK,
		  "rotation NULL refused, out untouched", NULL, NULL);
}

/* ---------- index names ---------- */

/* count copies of unit, after head, into buf */
static char *
repeat(char *buf, size_t size, const char *head, const char *unit, int count)
{
	int			i;

	snprintf(buf, size, "%s", head);
	for (i = 0; i < count; i++)
		strncat(buf, unit, size - strlen(buf) - 1);
	return buf;
}

/* expect index accepted (fragment NULL) or refused with fragment in why */
static void
check_valid(const char *index, const char *fragment)
{
	const char *why = "untouched";
	bool		ok = fh_os_index_valid(index, &why);
	char		what[400];
	char		b[300];

	snprintf(what, sizeof(what), "index name \"%s\" (%d bytes) %s",
			 show(b, 80, index), index ? (int) strlen(index) : -1,
			 fragment ? "refused" : "accepted");
	if (fragment == NULL)
		check(ok && why == NULL, what, "accepted, why NULL", why);
	else
		check(!ok && why != NULL && strstr(why, fragment) != NULL, what,
			  fragment, why);
	/* the same answer without a why */
	check(fh_os_index_valid(index, NULL) == (fragment == NULL), what, NULL, NULL);
}

static void
check_index_names(void)
{
	static const struct
	{
		const char *index;
		const char *fragment;
	}			cases[] = {
		/* accepted */
		{"myindex", NULL},
		{"a", NULL},
		{"logs-2016", NULL},
		{"my_index+1-x", NULL},
		{"x_", NULL}, {"x-", NULL}, {"x+", NULL},
		{".hidden", NULL},
		{".a", NULL}, {"a.", NULL}, {"...", NULL},
		{"a=b!c@d$e%f^g&h(i)j[k]l{m}n~o'p`q;r", NULL},
		{"0123456789", NULL},
		{"\xe6\x97\xa5\xe6\x9c\xac", NULL},	/* two CJK characters, UTF-8 */
		{"caf\xc3\xa9", NULL},
		{"\xf4\x8f\xbf\xbf", NULL},	/* U+10FFFF */
		{"\xee\x80\x80", NULL},	/* U+E000, just past the surrogates */

		/* empty */
		{"", "empty"},
		{NULL, "empty"},

		/* upper case */
		{"MyIndex", "lower case"},
		{"myindeX", "lower case"},
		{"Z", "lower case"},

		/* first character */
		{"_x", "start with"},
		{"-x", "start with"},
		{"+x", "start with"},
		{"_", "start with"},

		/* . and .. */
		{".", "\".\" or \"..\""},
		{"..", "\".\" or \"..\""},

		/* the forbidden characters, first, inside and last */
		{"a\\b", "'\\'"}, {"\\a", "'\\'"}, {"a\\", "'\\'"},
		{"a/b", "'/'"}, {"/a", "'/'"}, {"a/", "'/'"},
		{"a*b", "'*'"}, {"*", "'*'"},
		{"a?b", "'?'"}, {"?", "'?'"},
		{"a\"b", "'\"'"}, {"\"", "'\"'"},
		{"a<b", "'<'"}, {"<", "'<'"},
		{"a>b", "'>'"}, {">", "'>'"},
		{"a|b", "'|'"}, {"|", "'|'"},
		{"a b", "space"}, {" a", "space"}, {"a ", "space"},
		{"a,b", "','"}, {",", "','"},
		{"a#b", "'#'"}, {"#a", "'#'"},
		{"a:b", "':'"}, {":", "':'"},

		/* control characters */
		{"a\tb", "control"},
		{"a\nb", "control"},
		{"\x01", "control"},
		{"a\x7f", "control"},

		/* not UTF-8 */
		{"\xff", "UTF-8"},
		{"a\x80", "UTF-8"},		/* a lone continuation byte */
		{"a\xc3", "UTF-8"},		/* cut short by the end */
		{"\xe6\x97", "UTF-8"},
		{"\xe6\x97x", "UTF-8"},
		{"\xc0\xaf", "UTF-8"},	/* overlong '/' */
		{"\xc1\xbf", "UTF-8"},
		{"\xe0\x80\xaf", "UTF-8"},
		{"\xf0\x82\x82\xac", "UTF-8"},
		{"\xed\xa0\x80", "UTF-8"},	/* a surrogate */
		{"\xf4\x90\x80\x80", "UTF-8"},	/* past U+10FFFF */
		{"\xf8\x88\x80\x80\x80", "UTF-8"},
	};
	char		buf[1200];
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_valid(cases[i].index, cases[i].fragment);

	/* 80 characters, as Firehose counts them (UTF-16 units) */
	check_valid(repeat(buf, sizeof(buf), "", "a", 80), NULL);
	check_valid(repeat(buf, sizeof(buf), "", "a", 81), "80 characters");
	check_valid(repeat(buf, sizeof(buf), "", "\xc3\xa9", 80), NULL);	/* 160 bytes */
	check_valid(repeat(buf, sizeof(buf), "", "\xc3\xa9", 81), "80 characters");
	/* U+1F600 is two units: 40 of them are 80 characters, 41 are 82 */
	check_valid(repeat(buf, sizeof(buf), "", "\xf0\x9f\x98\x80", 40), NULL);
	check_valid(repeat(buf, sizeof(buf), "", "\xf0\x9f\x98\x80", 41), "80 characters");
	check_valid(repeat(buf, sizeof(buf), "\xf0\x9f\x98\x80", "a", 78), NULL);
	check_valid(repeat(buf, sizeof(buf), "\xf0\x9f\x98\x80", "a", 79), "80 characters");

	/* 255 bytes with the 14-byte suffix: at most 241 bytes of IndexName */
	check_valid(repeat(buf, sizeof(buf), "", "\xe6\x97\xa5", 80), NULL);	/* 240 */
	check_valid(repeat(buf, sizeof(buf), "", "\xe6\x97\xa5", 81), "255 bytes");	/* 243 */
	check_valid(repeat(buf, sizeof(buf), "", "a", 241), "80 characters");
	check_valid(repeat(buf, sizeof(buf), "", "a", 242), "255 bytes");
	check_valid(repeat(buf, sizeof(buf), "", "a", 1000), "255 bytes");

	/* a rule broken far into a long name is still found */
	check_valid(strcat(repeat(buf, sizeof(buf), "", "a", 200), "B"), "lower case");
	check_valid(strcat(repeat(buf, sizeof(buf), "", "a", 70), "\xe6\x97"), "UTF-8");
}

int
main(void)
{
	check_examples();
	check_instants();
	check_range_and_buffers();
	check_rotation_names();
	check_index_names();
	printf("osindex: %d of %d checks pass\n", checks_run - checks_failed,
		   checks_run);
	return checks_failed ? 1 : 0;
}
