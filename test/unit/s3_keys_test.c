/*-------------------------------------------------------------------------
 *
 * s3_keys_test.c
 *	  Unit test of src/s3_keys.c: Firehose's prefix rules, the evaluation of
 *	  !{timestamp:...}, !{firehose:...} and the default prefix, and the
 *	  object key layout, each against expected strings written out in full.
 *
 * Expected values come from ../shared/reference/firehose.md ("ref:N" is
 * a line of it) sections 3.1-3.3 and 3.8, from the examples of the source
 * it cites for them (DG23:s3-prefixes, the "Example prefixes" table, byte
 * for byte) and from java.time's documented formatting.  Instants are
 * epoch milliseconds computed independently (Python's datetime), with the
 * date in a name or a comment.
 *
 * Output: a FAIL line for each failing check with what was expected and
 * what came back, then "s3keys: N of M checks pass"; exit status 1 when any
 * check failed.
 *
 *-------------------------------------------------------------------------
 */
#include "s3_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_NAME "s3keys"
#include "check.h"

#define T_2018_08_27_1030	INT64_C(1535365800000)	/* the reference's instant */
#define T_2018_08_10_1030	INT64_C(1533897000000)
#define T_2018_08_03_1030	INT64_C(1533292200000)
#define T_2018_07_06_2315	INT64_C(1530918900000)
#define T_2019_08_09_235509 INT64_C(1565394909000)
#define T_2024_02_29_130509_123 INT64_C(1709211909123)	/* Thursday, day 60 */
#define T_2024_03_05_0000	INT64_C(1709596800000)	/* Tuesday, day 65 */
#define T_2024_03_05_1200	INT64_C(1709640000000)
#define T_2024_03_05_090703_004 INT64_C(1709629623004)
#define T_MIN				INT64_C(-62135596800000)	/* 0001-01-01T00:00Z */
#define T_MAX				INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */

#define EOT "!{firehose:error-output-type}"

static void
check_str(const char *what, const char *expected, const char *got)
{
	check(got != NULL && strcmp(expected, got) == 0, what, expected, got);
}

/* ---------- validation ---------- */

typedef struct ParseCase
{
	const char *prefix;
	const char *error_prefix;
	const char *fragment;		/* NULL: accepted; else in the message */
} ParseCase;

static const ParseCase parse_cases[] = {
	/* accepted: the DG23:s3-prefixes examples, and other layouts */
	{NULL, NULL, NULL},
	{"", "", NULL},
	{"myFirehosePrefix", NULL, NULL},
	{"logs/", "", NULL},
	{NULL, "myFirehoseFailures/" EOT "/", NULL},
	{"myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}",
	"myFirehoseFailures/" EOT "/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}", NULL},
	{"myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
	"myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/" EOT, NULL},
	{"!{firehose:random-string}/", EOT "/!{firehose:random-string}", NULL},
	{"plain/", EOT, NULL},		/* literal Prefix with an ErrorOutputPrefix */
	{"a}b{c!d!", NULL, NULL},	/* '{', '}' and '!' alone are text */
	{"!{timestamp:HH:mm}", EOT, NULL},	/* the first ':' splits */
	{"!{timestamp:'{#['yyyy}", EOT, NULL},	/* reserved characters quoted */
	{"!{timestamp:[yyyy[MM]]}", EOT, NULL},
	{"\xe6\x97\xa5\xe4\xbb\x98/", NULL, NULL},	/* UTF-8 text */
	{"!{timestamp:yyyyyyyyyyyyyyyyyyy}", EOT, NULL},	/* 19 y: Java's limit */
	{"!{timestamp:SSSSSSSSS}", EOT, NULL},	/* 9 S: Java's limit */

	/* ref:264: "!{" may appear only inside expressions */
	{"abc!{", NULL, "prefix has \"!{\" without a closing \"}\": \"!{\""},
	{"x/!{timestamp:yyyy", EOT, "prefix has \"!{\" without a closing \"}\": \"!{timestamp:yyyy\""},
	{"!{timestamp:!{x}", EOT, "prefix has \"!{\" inside the expression \"!{timestamp:!{x}\""},
	{NULL, EOT "/!{firehose:!{x}", "error_output_prefix has \"!{\" inside the expression"},
	{"!{timestamp}", EOT, "prefix: expression \"!{timestamp}\" has no \":\""},
	{"!{}", EOT, "prefix: expression \"!{}\" has no \":\""},

	/* ref:256-260: the namespaces and values */
	{"!{foo:bar}", EOT, "prefix: unknown namespace \"foo\" in \"!{foo:bar}\""},
	{"!{Timestamp:yyyy}", EOT, "unknown namespace \"Timestamp\""},
	{"!{ timestamp:yyyy}", EOT, "unknown namespace \" timestamp\""},
	{"!{:yyyy}", EOT, "unknown namespace \"\""},
	{"!{firehose:foo}", EOT, "prefix: unknown value \"foo\" in \"!{firehose:foo}\""},
	{"!{firehose:random-string:x}", EOT, "unknown value \"random-string:x\""},
	{NULL, EOT "/!{firehose:randomstring}", "error_output_prefix: unknown value \"randomstring\""},

	/* ref:258, ref:266: error-output-type in ErrorOutputPrefix only */
	{"a/" EOT "/", "e/" EOT, "prefix must not contain \"!{firehose:error-output-type}\"; it is allowed only in error_output_prefix"},
	{EOT, NULL, "prefix must not contain \"!{firehose:error-output-type}\""},

	/* ref:273: partitionKeyFrom* not in ErrorOutputPrefix; ref 3.5 */
	{"customer=!{partitionKeyFromQuery:customer_id}/", EOT, NULL},
	{"!{partitionKeyFromLambda:id}/!{partitionKeyFromQuery:id}/", EOT, NULL},
	{"!{partitionKeyFromQuery:}/", EOT, "prefix: \"!{partitionKeyFromQuery:}\" does not name a partition key"},
	{"!{partitionKeyFromQuery:a.b}/", EOT, "\"!{partitionKeyFromQuery:a.b}\" does not name a partition key"},
	{"!{partitionKeyFromQuery:id}/", NULL, "error_output_prefix is required when prefix contains expressions"},
	{NULL, EOT "/!{partitionKeyFromQuery:id}", "error_output_prefix must not contain \"!{partitionKeyFromQuery:id}\""},
	{NULL, EOT "/!{partitionKeyFromLambda:id}", "error_output_prefix must not contain \"!{partitionKeyFromLambda:id}\""},

	/* ref:266: a set ErrorOutputPrefix contains error-output-type */
	{NULL, "errors/", "error_output_prefix must contain \"!{firehose:error-output-type}\""},
	{"p/", "errors/!{timestamp:yyyy}/", "error_output_prefix must contain \"!{firehose:error-output-type}\""},
	{"!{timestamp:yyyy}/", "e/!{firehose:random-string}", "error_output_prefix must contain"},

	/* ref:267: ErrorOutputPrefix null only if Prefix has no expressions */
	{"!{timestamp:yyyy/MM/dd}", NULL, "error_output_prefix is required when prefix contains expressions"},
	{"!{firehose:random-string}/", "", "error_output_prefix is required when prefix contains expressions"},

	/* timestamp patterns (Java DateTimeFormatter) */
	{"!{timestamp:}", EOT, "prefix: empty pattern in \"!{timestamp:}\""},
	{"!{timestamp:yyyyQ}", EOT, "prefix: unsupported pattern letter \"Q\" in \"!{timestamp:yyyyQ}\""},
	{"!{timestamp:G}", EOT, "unsupported pattern letter \"G\""},
	{"!{timestamp:YYYY}", EOT, "unsupported pattern letter \"Y\""},
	{"!{timestamp:ww}", EOT, "unsupported pattern letter \"w\""},
	{"!{timestamp:z}", EOT, "unsupported pattern letter \"z\""},
	{"!{timestamp:XXX}", EOT, "unsupported pattern letter \"X\""},
	{"!{timestamp:n}", EOT, "unsupported pattern letter \"n\""},
	{"!{timestamp:T}", EOT, "unsupported pattern letter \"T\""},
	{"!{timestamp:ddd}", EOT, "prefix: too many pattern letters \"ddd\" in \"!{timestamp:ddd}\""},
	{"!{timestamp:HHH}", EOT, "too many pattern letters \"HHH\""},
	{"!{timestamp:hhh}", EOT, "too many pattern letters \"hhh\""},
	{"!{timestamp:KKK}", EOT, "too many pattern letters \"KKK\""},
	{"!{timestamp:kkk}", EOT, "too many pattern letters \"kkk\""},
	{"!{timestamp:mmm}", EOT, "too many pattern letters \"mmm\""},
	{"!{timestamp:sss}", EOT, "too many pattern letters \"sss\""},
	{"!{timestamp:DDDD}", EOT, "too many pattern letters \"DDDD\""},
	{"!{timestamp:MMMMMM}", EOT, "too many pattern letters \"MMMMMM\""},
	{"!{timestamp:LLLLLL}", EOT, "too many pattern letters \"LLLLLL\""},
	{"!{timestamp:EEEEEE}", EOT, "too many pattern letters \"EEEEEE\""},
	{"!{timestamp:aa}", EOT, "too many pattern letters \"aa\""},
	{"!{timestamp:SSSSSSSSSS}", EOT, "too many pattern letters \"SSSSSSSSSS\""},
	{"!{timestamp:yyyyyyyyyyyyyyyyyyyy}", EOT, "too many pattern letters \"yyyyyyyyyyyyyyyyyyyy\""},
	{"!{timestamp:'abc}", EOT, "prefix: unterminated quoted text in \"!{timestamp:'abc}\""},
	{"!{timestamp:'{}'}", EOT, "unterminated quoted text in \"!{timestamp:'{}\""},
	{"!{timestamp:yyyy#}", EOT, "prefix: reserved character \"#\" in \"!{timestamp:yyyy#}\""},
	{"!{timestamp:{}", EOT, "reserved character \"{\""},
	{"!{timestamp:yyyy]}", EOT, "prefix: \"]\" without \"[\" in \"!{timestamp:yyyy]}\""},
	{NULL, EOT "/!{timestamp:b}", "error_output_prefix: unsupported pattern letter \"b\""},

	/* API pattern ".*": no line terminators; S3 keys are UTF-8 */
	{"a\nb", NULL, "prefix contains a line break at character 2"},
	{"ab\r", NULL, "prefix contains a line break at character 3"},
	{"\xc2\x85", NULL, "prefix contains a line break at character 1"},
	{"x\xe2\x80\xa8", NULL, "prefix contains a line break at character 2"},
	{"\xe2\x80\xa9", NULL, "prefix contains a line break at character 1"},
	{NULL, EOT "\n", "error_output_prefix contains a line break at character 30"},
	{"ab\xff", NULL, "prefix is not valid UTF-8 at byte 3"},
	{"\xc0\xaf", NULL, "prefix is not valid UTF-8 at byte 1"},	/* overlong */
	{"\xe0\x80\xaf", NULL, "prefix is not valid UTF-8 at byte 1"},	/* overlong */
	{"\xf0\x80\x80\xaf", NULL, "prefix is not valid UTF-8 at byte 1"},	/* overlong */
	{"\xed\xa0\x80", NULL, "prefix is not valid UTF-8 at byte 1"},	/* surrogate */
	{"\xf4\x90\x80\x80", NULL, "prefix is not valid UTF-8 at byte 1"},	/* > U+10FFFF */
	{"a\xe6\x97", NULL, "prefix is not valid UTF-8 at byte 2"},	/* cut short */
	{NULL, "\x80" EOT, "error_output_prefix is not valid UTF-8 at byte 1"},
};

static void
check_parse_table(void)
{
	size_t		i;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++)
	{
		const ParseCase *c = &parse_cases[i];
		FhS3KeyLayout *layout = (FhS3KeyLayout *) 1;
		char		err[FH_S3KEY_ERROR_LEN];
		char		what[600];
		FhS3KeyStatus st;

		st = fh_s3key_layout_parse(c->prefix, c->error_prefix, &layout, err);
		snprintf(what, sizeof(what), "parse prefix=%s error_output_prefix=%s",
				 c->prefix ? c->prefix : "NULL",
				 c->error_prefix ? c->error_prefix : "NULL");
		if (c->fragment == NULL)
			check(st == FH_S3KEY_OK && layout != NULL && err[0] == '\0',
				  what, "accepted", err);
		else
			check(st == FH_S3KEY_EINVAL && layout == NULL &&
				  strstr(err, c->fragment) != NULL,
				  what, c->fragment, err);
		fh_s3key_layout_free(st == FH_S3KEY_OK ? layout : NULL);
	}
}

/* a prefix of n copies of unit, then tail */
static char *
repeat(const char *unit, int n, const char *tail)
{
	size_t		ul = strlen(unit);
	char	   *s = malloc(ul * n + strlen(tail) + 1);
	int			i;

	for (i = 0; i < n; i++)
		memcpy(s + ul * i, unit, ul);
	strcpy(s + ul * n, tail);
	return s;
}

static void
expect_parse(const char *what, const char *prefix, const char *error_prefix,
			 const char *fragment)
{
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyStatus st;

	st = fh_s3key_layout_parse(prefix, error_prefix, &layout, err);
	if (fragment == NULL)
		check(st == FH_S3KEY_OK && layout != NULL, what, "accepted", err);
	else
		check(st == FH_S3KEY_EINVAL && layout == NULL &&
			  strstr(err, fragment) != NULL, what, fragment, err);
	fh_s3key_layout_free(layout);
}

/*
 * Length limits: 1024 characters as given (ref:57-58), 512 after
 * evaluation (ref:265), counted in UTF-16 units, against the longest evaluation.
 */
static void
check_lengths(void)
{
	char	   *s;

	/* 498 + "yyyy/MM/dd/HH/" (14) = 512 */
	s = repeat("a", 498, "/");
	s[498] = '\0';
	expect_parse("prefix of 498 + 14 appended = 512", s, EOT, NULL);
	free(s);
	s = repeat("a", 499, "");
	expect_parse("prefix of 499 + 14 = 513", s, EOT,
				 "prefix can be 513 characters long after evaluation; at most 512 are allowed");
	free(s);

	/* without ErrorOutputPrefix: <prefix><longest type (30)>/ + 14 */
	s = repeat("a", 467, "");
	expect_parse("derived error prefix of 467 + 30 + 1 + 14 = 512", s, NULL, NULL);
	free(s);
	s = repeat("a", 468, "");
	expect_parse("derived error prefix of 513", s, NULL,
				 "error_output_prefix (derived from prefix) can be 513 characters long after evaluation; at most 512 are allowed");
	free(s);

	/* a 4-byte UTF-8 character is 2 units: 249 * 2 + 14 = 512 */
	s = repeat("\xf0\x9f\x98\x80", 249, "");
	expect_parse("249 emoji + 14 = 512 units", s, EOT, NULL);
	free(s);
	s = repeat("\xf0\x9f\x98\x80", 250, "");
	expect_parse("250 emoji + 14 = 514 units", s, EOT, "prefix can be 514 characters long");
	free(s);
	/* a 3-byte character is 1 unit: 498 of them + 14 = 512 */
	s = repeat("\xe6\x97\xa5", 498, "");
	expect_parse("498 CJK characters + 14 = 512 units", s, EOT, NULL);
	free(s);

	/* the longest of each element counts: MMMM 9, EEEE 9, random 11 */
	s = repeat("a", 503, "!{timestamp:MMMM}");
	expect_parse("503 + MMMM (9) = 512", s, EOT, NULL);
	free(s);
	s = repeat("a", 504, "!{timestamp:MMMM}");
	expect_parse("504 + MMMM (9) = 513", s, EOT, "prefix can be 513 characters");
	free(s);
	s = repeat("a", 504, "!{timestamp:EEEE}");
	expect_parse("504 + EEEE (9) = 513", s, EOT, "prefix can be 513 characters");
	free(s);
	s = repeat("a", 497, "!{timestamp:D}!{timestamp:'x'}");
	expect_parse("497 + D (3) + x = 501 + random 11 = 512",
				 s, EOT, NULL);
	free(s);
	s = repeat("a", 490, "!{firehose:random-string}!{timestamp:yyyyyyyyyyyyy}");
	expect_parse("490 + random (11) + 13 y = 514", s, EOT, "prefix can be 514 characters");
	free(s);
	/* an ErrorOutputPrefix: the type counts as the longest, 30 */
	s = repeat("a", 482, EOT);
	expect_parse("error prefix 482 + 30 = 512", NULL, s, NULL);
	free(s);
	s = repeat("a", 483, EOT);
	expect_parse("error prefix 483 + 30 = 513", NULL, s,
				 "error_output_prefix can be 513 characters long after evaluation");
	free(s);

	/* as given: at most 1024 characters */
	s = repeat("!{timestamp:''}", 68, "abcd");	/* 1024 characters */
	expect_parse("1024 characters as given", s, EOT, NULL);
	free(s);
	s = repeat("!{timestamp:''}", 68, "abcde");
	expect_parse("1025 characters as given", s, EOT,
				 "prefix has 1025 characters; at most 1024 are allowed");
	free(s);
	s = repeat("\xf0\x9f\x98\x80", 513, "");
	expect_parse("513 emoji as given are 1026 units", NULL, s,
				 "error_output_prefix has 1026 characters; at most 1024 are allowed");
	free(s);
}

/* ---------- evaluation ---------- */

typedef struct EvalCase
{
	const char *prefix;
	const char *error_prefix;
	int64_t		ms;
	int32_t		offset_s;
	const char *type;			/* NULL: the Prefix */
	const char *random1;
	const char *random2;
	const char *expected;
} EvalCase;

static const EvalCase eval_cases[] = {
	/* the default prefix, UTC (ref:239, ref:263) */
	{NULL, NULL, T_2018_08_27_1030, 0, NULL, NULL, NULL, "2018/08/27/10/"},
	{"", "", 0, 0, NULL, NULL, NULL, "1970/01/01/00/"},
	/*
	 * no timestamp expression: yyyy/MM/dd/HH/ appended as given (ref:263;
	 * ref:270's "myFirehosePrefix/2018/08/27/" contradicts it)
	 */
	{"myFirehosePrefix", NULL, T_2018_08_27_1030, 0, NULL, NULL, NULL,
	"myFirehosePrefix2018/08/27/10/"},
	{"logs/", NULL, T_2018_08_27_1030, 0, NULL, NULL, NULL, "logs/2018/08/27/10/"},
	{"r=!{firehose:random-string}/", EOT, T_2018_08_27_1030, 0, NULL,
	"046b6c7f-0b", NULL, "r=046b6c7f-0b/2018/08/27/10/"},
	/* no ErrorOutputPrefix: <prefix><type>/yyyy/MM/dd/HH/ (ref:269, ref:319) */
	{NULL, NULL, T_2018_08_27_1030, 0, "http-endpoint-failed", NULL, NULL,
	"http-endpoint-failed/2018/08/27/10/"},
	{"myFirehosePrefix/", NULL, T_2018_08_27_1030, 0, "processing-failed", NULL, NULL,
	"myFirehosePrefix/processing-failed/2018/08/27/10/"},
	{"myFirehosePrefix", NULL, T_2018_08_27_1030, 0, "processing-failed", NULL, NULL,
	"myFirehosePrefixprocessing-failed/2018/08/27/10/"},
	/* the Redshift destination's manifests, and those of skipped objects */
	{"rs/", NULL, T_2018_08_27_1030, 0, "manifests", NULL, NULL,
	"rs/manifests/2018/08/27/10/"},
	{"rs/", NULL, T_2018_08_27_1030, 0, "errors/manifests", NULL, NULL,
	"rs/errors/manifests/2018/08/27/10/"},

	/*
	 * DG23:s3-prefixes "Example prefixes", byte for byte.  The table says
	 * "at 10:30 AM UTC on Aug 27, 2018" but its rows disagree (dd = 10,
	 * 07/06/23): each row is evaluated at the instant its output shows.
	 */
	{NULL, "myFirehoseFailures/" EOT "/", T_2018_08_27_1030, 0,
	"processing-failed", NULL, NULL, "myFirehoseFailures/processing-failed/"},
	{"myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}",
		"myFirehoseFailures/" EOT "/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}",
		T_2018_08_10_1030, 0, NULL, "5abf82daaa5", NULL,
	"myFirehose/DeliveredYear=2018/anyMonth/rand=5abf82daaa5"},
	{"myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}",
		"myFirehoseFailures/" EOT "/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}",
		T_2018_08_10_1030, 0, "processing-failed", NULL, NULL,
	"myFirehoseFailures/processing-failed/2018/anyMonth/10"},
	{"myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
		"myErrorPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/" EOT,
		T_2018_07_06_2315, 0, NULL, NULL, NULL,
	"myPrefix/year=2018/month=07/day=06/hour=23/"},
	{"myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/",
		"myErrorPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/" EOT,
		T_2018_07_06_2315, 0, "processing-failed", NULL, NULL,
	"myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed"},
	{"p/", "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/" EOT,
		T_2018_07_06_2315, 0, "processing-failed", NULL, NULL,
	"myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed"},
	/* DG23:s3-prefixes, the firehose namespace table */
	{"p/", "myPrefix/result=" EOT "/!{timestamp:yyyy/MM/dd}", T_2018_08_03_1030, 0,
	"processing-failed", NULL, NULL, "myPrefix/result=processing-failed/2018/08/03"},
	{"myPrefix/!{firehose:random-string}/!{timestamp:yyyy}/", EOT, T_2018_08_03_1030, 0,
	NULL, "046b6c7f-0b", NULL, "myPrefix/046b6c7f-0b/2018/"},

	/* random strings: one per use, in order; also in the error prefix */
	{"!{firehose:random-string}/!{timestamp:yyyy}/!{firehose:random-string}", EOT,
		T_2018_08_27_1030, 0, NULL, "aaaaaaaaaaa", "bbbbbbbbbbb",
	"aaaaaaaaaaa/2018/bbbbbbbbbbb"},
	{"p/", EOT "/!{firehose:random-string}", T_2018_08_27_1030, 0,
	"splunk-failed", "A-b_C-d_E-f", NULL, "splunk-failed/A-b_C-d_E-f"},
	/* the error type is the same on each use */
	{"p/", EOT "/x/" EOT, T_2018_08_27_1030, 0, "format-conversion-failed", NULL, NULL,
	"format-conversion-failed/x/format-conversion-failed"},
	{"p/", EOT, 0, 0, "AmazonOpenSearchService-failed", NULL, NULL,
	"AmazonOpenSearchService-failed"},
	{"p/", EOT, 0, 0, "decompression-failed", NULL, NULL, "decompression-failed"},

	/* rollover of year, month, leap day; zones */
	{NULL, NULL, INT64_C(1546300799999), 0, NULL, NULL, NULL, "2018/12/31/23/"},
	{NULL, NULL, INT64_C(1546300800000), 0, NULL, NULL, NULL, "2019/01/01/00/"},
	{NULL, NULL, INT64_C(1709251199000), 0, NULL, NULL, NULL, "2024/02/29/23/"},
	{NULL, NULL, INT64_C(1709251200000), 0, NULL, NULL, NULL, "2024/03/01/00/"},
	{NULL, NULL, INT64_C(1677628799000), 0, NULL, NULL, NULL, "2023/02/28/23/"},
	{NULL, NULL, INT64_C(1677628800000), 0, NULL, NULL, NULL, "2023/03/01/00/"},
	{NULL, NULL, INT64_C(4107542399000), 0, NULL, NULL, NULL, "2100/02/28/23/"},
	{NULL, NULL, INT64_C(4107542400000), 0, NULL, NULL, NULL, "2100/03/01/00/"},
	{NULL, NULL, INT64_C(1546286400000), 9 * 3600, NULL, NULL, NULL, "2019/01/01/05/"},
	{NULL, NULL, INT64_C(1546308000000), -5 * 3600, NULL, NULL, NULL, "2018/12/31/21/"},
	{NULL, NULL, INT64_C(1709150400000), 9 * 3600, NULL, NULL, NULL, "2024/02/29/05/"},
	{"!{timestamp:yyyy-MM-dd HH:mm}", EOT, INT64_C(1546308000000), 5 * 3600 + 1800,
	NULL, NULL, NULL, "2019-01-01 07:30"},
	{"!{timestamp:yyyy-MM-dd HH:mm}", EOT, INT64_C(1546308000000), -(9 * 3600 + 1800),
	NULL, NULL, NULL, "2018-12-31 16:30"},
	{NULL, NULL, T_2018_08_27_1030, 18 * 3600, NULL, NULL, NULL, "2018/08/28/04/"},
	{NULL, NULL, T_2018_08_27_1030, -18 * 3600, NULL, NULL, NULL, "2018/08/26/16/"},
	/* the zone applies to the derived error prefix too */
	{NULL, NULL, INT64_C(1546286400000), 9 * 3600, "splunk-failed", NULL, NULL,
	"splunk-failed/2019/01/01/05/"},
	/* before 1970 and the ends of the range */
	{"!{timestamp:yyyy-MM-dd HH:mm:ss.SSS EEEE}", EOT, -1, 0, NULL, NULL, NULL,
	"1969-12-31 23:59:59.999 Wednesday"},
	{"!{timestamp:yyyy-MM-dd HH:mm:ss.SSS EEEE}", EOT, 0, 0, NULL, NULL, NULL,
	"1970-01-01 00:00:00.000 Thursday"},
	{"!{timestamp:yyyy y yy yyy-MM-dd D EEEE}", EOT, T_MIN, 0, NULL, NULL, NULL,
	"0001 1 01 001-01-01 1 Monday"},
	{"!{timestamp:yyyy-MM-dd HH:mm:ss.SSS D EEEE}", EOT, T_MAX, 0, NULL, NULL, NULL,
	"9999-12-31 23:59:59.999 365 Friday"},
	{"!{timestamp:yyyy-MM-dd HH}", EOT, T_MIN + 3600000, -3600, NULL, NULL, NULL,
	"0001-01-01 00"},
	{"!{timestamp:yyyy-MM-dd HH}", EOT, T_MAX - 3600000, 3600, NULL, NULL, NULL,
	"9999-12-31 23"},

	/* literal text (ref:256: single quotes; Java: '' and non-letters) */
	{"!{timestamp:'year='yyyy'/month='MM}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL,
	"year=2018/month=08"},
	{"!{timestamp:''}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "'"},
	{"!{timestamp:yyyy''MM}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "2018'08"},
	{"!{timestamp:'it''s' yyyy}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "it's 2018"},
	{"!{timestamp:'yyyy'}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "yyyy"},
	{"!{timestamp:''''}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "''"},
	{"!{timestamp:yyyy-MM-dd'T'HH:mm:ss}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL,
	"2018-08-27T10:30:00"},
	{"!{timestamp:[yyyy]/[MM]}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "2018/08"},
	{"!{timestamp:[yyyy[MM]]}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "201808"},
	{"!{timestamp:'{#['yyyy}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "{#[2018"},
	{"!{timestamp:\xe6\x97\xa5=yyyy!MM=}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL,
	"\xe6\x97\xa5=2018!08="},
	{"!{timestamp:HH:mm}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL, "10:30"},
	{"a}b{c!d!", NULL, T_2018_08_27_1030, 0, NULL, NULL, NULL, "a}b{c!d!2018/08/27/10/"},
	{"x/!{timestamp:yyyy}/y/!{timestamp:yyyy}", EOT, T_2018_08_27_1030, 0, NULL, NULL, NULL,
	"x/2018/y/2018"},
};

/* pattern letters, one expression each: {pattern, instant, expected} */
typedef struct LetterCase
{
	const char *pattern;
	int64_t		ms;
	const char *expected;
} LetterCase;

static const LetterCase letter_cases[] = {
	/* 2024-02-29T13:05:09.123Z, a Thursday, day of year 60 */
	{"yyyy", T_2024_02_29_130509_123, "2024"},
	{"yy", T_2024_02_29_130509_123, "24"},
	{"y", T_2024_02_29_130509_123, "2024"},
	{"yyy", T_2024_02_29_130509_123, "2024"},
	{"yyyyy", T_2024_02_29_130509_123, "02024"},
	{"uuuu", T_2024_02_29_130509_123, "2024"},
	{"uu", T_2024_02_29_130509_123, "24"},
	{"M", T_2024_02_29_130509_123, "2"},
	{"MM", T_2024_02_29_130509_123, "02"},
	{"MMM", T_2024_02_29_130509_123, "Feb"},
	{"MMMM", T_2024_02_29_130509_123, "February"},
	{"MMMMM", T_2024_02_29_130509_123, "F"},
	{"L", T_2024_02_29_130509_123, "2"},
	{"LL", T_2024_02_29_130509_123, "02"},
	{"LLL", T_2024_02_29_130509_123, "Feb"},
	{"LLLL", T_2024_02_29_130509_123, "February"},
	{"d", T_2024_02_29_130509_123, "29"},
	{"dd", T_2024_02_29_130509_123, "29"},
	{"D", T_2024_02_29_130509_123, "60"},
	{"DD", T_2024_02_29_130509_123, "60"},
	{"DDD", T_2024_02_29_130509_123, "060"},
	{"H", T_2024_02_29_130509_123, "13"},
	{"HH", T_2024_02_29_130509_123, "13"},
	{"h", T_2024_02_29_130509_123, "1"},
	{"hh", T_2024_02_29_130509_123, "01"},
	{"K", T_2024_02_29_130509_123, "1"},
	{"KK", T_2024_02_29_130509_123, "01"},
	{"k", T_2024_02_29_130509_123, "13"},
	{"kk", T_2024_02_29_130509_123, "13"},
	{"m", T_2024_02_29_130509_123, "5"},
	{"mm", T_2024_02_29_130509_123, "05"},
	{"s", T_2024_02_29_130509_123, "9"},
	{"ss", T_2024_02_29_130509_123, "09"},
	{"S", T_2024_02_29_130509_123, "1"},
	{"SS", T_2024_02_29_130509_123, "12"},
	{"SSS", T_2024_02_29_130509_123, "123"},
	{"SSSSSS", T_2024_02_29_130509_123, "123000"},
	{"SSSSSSSSS", T_2024_02_29_130509_123, "123000000"},
	{"E", T_2024_02_29_130509_123, "Thu"},
	{"EE", T_2024_02_29_130509_123, "Thu"},
	{"EEE", T_2024_02_29_130509_123, "Thu"},
	{"EEEE", T_2024_02_29_130509_123, "Thursday"},
	{"EEEEE", T_2024_02_29_130509_123, "T"},
	{"a", T_2024_02_29_130509_123, "PM"},
	/* 2024-03-05T00:00Z, a Tuesday, day 65: padding, midnight */
	{"d", T_2024_03_05_0000, "5"},
	{"dd", T_2024_03_05_0000, "05"},
	{"D", T_2024_03_05_0000, "65"},
	{"DD", T_2024_03_05_0000, "65"},
	{"DDD", T_2024_03_05_0000, "065"},
	{"M", T_2024_03_05_0000, "3"},
	{"MMMM", T_2024_03_05_0000, "March"},
	{"H", T_2024_03_05_0000, "0"},
	{"HH", T_2024_03_05_0000, "00"},
	{"h", T_2024_03_05_0000, "12"},
	{"hh", T_2024_03_05_0000, "12"},
	{"K", T_2024_03_05_0000, "0"},
	{"k", T_2024_03_05_0000, "24"},
	{"a", T_2024_03_05_0000, "AM"},
	{"EEEE", T_2024_03_05_0000, "Tuesday"},
	/* noon */
	{"H h K k a", T_2024_03_05_1200, "12 12 0 12 PM"},
	/* 2024-03-05T09:07:03.004Z: one-digit fields, milliseconds */
	{"H m s", T_2024_03_05_090703_004, "9 7 3"},
	{"HH mm ss", T_2024_03_05_090703_004, "09 07 03"},
	{"S SS SSS SSSS", T_2024_03_05_090703_004, "0 00 004 0040"},
	/* day of year at the ends of years, leap and not */
	{"D DDD", INT64_C(1735603200000), "366 366"},	/* 2024-12-31 */
	{"D DDD", INT64_C(1703980800000), "365 365"},	/* 2023-12-31 */
	{"MM-dd D", INT64_C(951825600000), "02-29 60"},	/* 2000-02-29 */
	{"MM-dd D", INT64_C(4107542400000), "03-01 60"},	/* 2100-03-01 */
	{"D", INT64_C(1546300800000), "1"},	/* 2019-01-01 */
	{"D", INT64_C(978220800000), "366"},	/* 2000-12-31: leap (400) */
	{"D", INT64_C(4133894400000), "365"},	/* 2100-12-31: not (100) */
	{"D", INT64_C(-2177539200000), "365"},	/* 1900-12-31: not (100) */
	{"yy yyyy", T_MAX, "99 9999"},
	/* every month name, the 15th of each month of 2018 */
	{"MMM MMMM MMMMM", INT64_C(1515974400000), "Jan January J"},
	{"MMM MMMM MMMMM", INT64_C(1518652800000), "Feb February F"},
	{"MMM MMMM MMMMM", INT64_C(1521072000000), "Mar March M"},
	{"MMM MMMM MMMMM", INT64_C(1523750400000), "Apr April A"},
	{"MMM MMMM MMMMM", INT64_C(1526342400000), "May May M"},
	{"MMM MMMM MMMMM", INT64_C(1529020800000), "Jun June J"},
	{"MMM MMMM MMMMM", INT64_C(1531612800000), "Jul July J"},
	{"MMM MMMM MMMMM", INT64_C(1534291200000), "Aug August A"},
	{"MMM MMMM MMMMM", INT64_C(1536969600000), "Sep September S"},
	{"MMM MMMM MMMMM", INT64_C(1539561600000), "Oct October O"},
	{"MMM MMMM MMMMM", INT64_C(1542240000000), "Nov November N"},
	{"MMM MMMM MMMMM", INT64_C(1544832000000), "Dec December D"},
	/* every day name, 2024-03-04 (Monday) to 2024-03-10 */
	{"E EEEE EEEEE", INT64_C(1709510400000), "Mon Monday M"},
	{"E EEEE EEEEE", INT64_C(1709596800000), "Tue Tuesday T"},
	{"E EEEE EEEEE", INT64_C(1709683200000), "Wed Wednesday W"},
	{"E EEEE EEEEE", INT64_C(1709769600000), "Thu Thursday T"},
	{"E EEEE EEEEE", INT64_C(1709856000000), "Fri Friday F"},
	{"E EEEE EEEEE", INT64_C(1709942400000), "Sat Saturday S"},
	{"E EEEE EEEEE", INT64_C(1710028800000), "Sun Sunday S"},
};

/* parse, evaluate, compare; what names the case in a FAIL line */
static void
expect_eval(const char *what, const char *prefix, const char *error_prefix,
			FhS3KeyTime t, const char *type, const char *r1, const char *r2,
			const char *expected)
{
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	char		out[FH_S3KEY_PREFIX_BUFSIZE];
	const char *randoms[2] = {r1, r2};
	FhS3KeyStatus st;

	st = fh_s3key_layout_parse(prefix, error_prefix, &layout, err);
	if (st != FH_S3KEY_OK)
	{
		check(0, what, expected, err);
		return;
	}
	st = fh_s3key_eval_prefix(layout, t, type, randoms,
							  (r1 != NULL) + (r2 != NULL), out, err);
	check(st == FH_S3KEY_OK && strcmp(out, expected) == 0, what, expected,
		  st == FH_S3KEY_OK ? out : err);
	fh_s3key_layout_free(layout);
}

static void
check_eval_tables(void)
{
	size_t		i;
	char		what[700];

	for (i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++)
	{
		const EvalCase *c = &eval_cases[i];
		FhS3KeyTime t = {c->ms, c->offset_s};

		snprintf(what, sizeof(what), "eval %s of prefix=%s error_output_prefix=%s at %lld%+d",
				 c->type ? c->type : "prefix",
				 c->prefix ? c->prefix : "NULL",
				 c->error_prefix ? c->error_prefix : "NULL",
				 (long long) c->ms, (int) c->offset_s);
		expect_eval(what, c->prefix, c->error_prefix, t, c->type, c->random1,
					c->random2, c->expected);
	}
	for (i = 0; i < sizeof(letter_cases) / sizeof(letter_cases[0]); i++)
	{
		const LetterCase *c = &letter_cases[i];
		FhS3KeyTime t = {c->ms, 0};
		char		prefix[100];

		snprintf(prefix, sizeof(prefix), "!{timestamp:%s}", c->pattern);
		snprintf(what, sizeof(what), "pattern \"%s\" at %lld", c->pattern,
				 (long long) c->ms);
		expect_eval(what, prefix, EOT, t, NULL, NULL, NULL, c->expected);
	}
}

/* evaluation refuses bad inputs, with a message */
static void
check_eval_refusals(void)
{
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	char		out[FH_S3KEY_PREFIX_BUFSIZE];
	const char *two[2] = {"aaaaaaaaaaa", "bbbbbbbbbbb"};
	const char *bad[2] = {"aaaaaaaaaaa", NULL};
	FhS3KeyTime t = {T_2018_08_27_1030, 0};
	FhS3KeyStatus st;
	int			k;
	static const struct
	{
		const char *random;
		const char *why;
	}			bad_random[] = {
		{"abc", "too short"},
		{"aaaaaaaaaaaa", "12 characters"},
		{"aaaaa/aaaaa", "a slash"},
		{"aaaaa aaaaa", "a space"},
		{"aaaaa.aaaaa", "a dot"},
	};

	st = fh_s3key_layout_parse("!{firehose:random-string}/!{firehose:random-string}",
							   EOT "/!{firehose:random-string}", &layout, err);
	check(st == FH_S3KEY_OK, "parse a layout with three random strings", NULL, err);
	if (st != FH_S3KEY_OK)
		return;
	check(fh_s3key_nrandom(layout, false) == 2, "the prefix takes 2 random strings", NULL, NULL);
	check(fh_s3key_nrandom(layout, true) == 1, "the error prefix takes 1 random string", NULL, NULL);

	st = fh_s3key_eval_prefix(layout, t, NULL, two, 1, out, err);
	check(st == FH_S3KEY_EINVAL && out[0] == '\0' &&
		  strstr(err, "2 random strings are needed, 1 were given"),
		  "too few random strings are refused", "2 random strings are needed, 1 were given", err);
	st = fh_s3key_eval_prefix(layout, t, NULL, bad, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "random string 2 is not 11 characters of [0-9A-Za-z_-]"),
		  "a NULL random string is refused", "random string 2 is not 11 characters", err);
	for (k = 0; k < (int) (sizeof(bad_random) / sizeof(bad_random[0])); k++)
	{
		const char *one[2] = {bad_random[k].random, "bbbbbbbbbbb"};
		char		what[100];

		snprintf(what, sizeof(what), "a random string with %s is refused", bad_random[k].why);
		st = fh_s3key_eval_prefix(layout, t, NULL, one, 2, out, err);
		check(st == FH_S3KEY_EINVAL && strstr(err, "random string 1 is not 11 characters"),
			  what, "random string 1 is not 11 characters", err);
	}
	st = fh_s3key_eval_prefix(layout, t, "s3-failed", two, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "unknown error output type \"s3-failed\""),
		  "an unknown error output type is refused", "unknown error output type \"s3-failed\"", err);
	st = fh_s3key_eval_prefix(layout, t, "elasticsearch-failed", two, 2, out, err);
	check(st == FH_S3KEY_EINVAL, "elasticsearch-failed (an old name) is refused", NULL, err);

	t.epoch_ms = T_MAX + 1;
	st = fh_s3key_eval_prefix(layout, t, NULL, two, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "is outside the years 1 to 9999"),
		  "a time after 9999 is refused", "is outside the years 1 to 9999", err);
	t.epoch_ms = T_MIN - 1;
	st = fh_s3key_eval_prefix(layout, t, NULL, two, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "is outside the years 1 to 9999"),
		  "a time before year 1 is refused", "is outside the years 1 to 9999", err);
	t.epoch_ms = T_MAX;
	t.utc_offset_s = 1;
	st = fh_s3key_eval_prefix(layout, t, NULL, two, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "is outside the years 1 to 9999"),
		  "a local time after 9999 is refused", "is outside the years 1 to 9999", err);
	t.epoch_ms = 0;
	t.utc_offset_s = 18 * 3600 + 1;
	st = fh_s3key_eval_prefix(layout, t, NULL, two, 2, out, err);
	check(st == FH_S3KEY_EINVAL && strstr(err, "time zone offset 64801 s is out of range"),
		  "an offset beyond 18 hours is refused", "time zone offset 64801 s is out of range", err);
	t.utc_offset_s = -18 * 3600 - 1;
	st = fh_s3key_eval_prefix(layout, t, NULL, two, 2, out, err);
	check(st == FH_S3KEY_EINVAL, "an offset beyond -18 hours is refused", NULL, err);
	fh_s3key_layout_free(layout);

	for (k = 0; k < 8; k++)
	{
		static const char *const types[] = {
			"processing-failed", "AmazonOpenSearchService-failed", "splunk-failed",
			"format-conversion-failed", "http-endpoint-failed", "decompression-failed",
			"manifests", "errors/manifests"
		};

		check(fh_s3key_is_error_output_type(types[k]), types[k], "an error output type", NULL);
	}
	check(!fh_s3key_is_error_output_type("Http-endpoint-failed") &&
		  !fh_s3key_is_error_output_type("") &&
		  !fh_s3key_is_error_output_type(NULL),
		  "other strings are not error output types", NULL, NULL);
}

/* ---------- object keys ---------- */

/* a9fa96af-e4e4-409f-bac3-1f804714faaa, the uuid of ref:241's example */
static const unsigned char example_id[16] = {
	0xa9, 0xfa, 0x96, 0xaf, 0xe4, 0xe4, 0x40, 0x9f,
	0xba, 0xc3, 0x1f, 0x80, 0x47, 0x14, 0xfa, 0xaa
};

static void
expect_key(const char *what, const char *prefix, const char *stream,
		   int64_t version, FhS3KeyTime t, const unsigned char *id,
		   const char *ext, const char *expected)
{
	char		key[FH_S3KEY_KEY_BUFSIZE];
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyStatus st;

	st = fh_s3key_object_key(prefix, stream, version, t, id, ext, key, err);
	check(st == FH_S3KEY_OK && strcmp(key, expected) == 0, what, expected,
		  st == FH_S3KEY_OK ? key : err);
}

static void
refuse_key(const char *what, const char *prefix, const char *stream,
		   int64_t version, FhS3KeyTime t, const char *ext,
		   const char *fragment)
{
	char		key[FH_S3KEY_KEY_BUFSIZE];
	char		err[FH_S3KEY_ERROR_LEN];
	FhS3KeyStatus st;

	st = fh_s3key_object_key(prefix, stream, version, t, example_id, ext, key, err);
	check(st == FH_S3KEY_EINVAL && key[0] == '\0' && strstr(err, fragment),
		  what, fragment, st == FH_S3KEY_OK ? key : err);
}

static void
check_keys(void)
{
	FhS3KeyTime t = {T_2019_08_09_235509, 0};
	FhS3KeyTime tokyo = {T_2019_08_09_235509, 9 * 3600};
	unsigned char zeros[16] = {0};
	unsigned char ones[16];
	char		uuid[FH_S3KEY_UUID_LEN + 1];
	char	   *s;
	char	   *expected;
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	char		prefix[FH_S3KEY_PREFIX_BUFSIZE];

	memset(ones, 0xff, sizeof(ones));

	/*
	 * ref:241: the dynamic-partitioning example key, whose suffix lacks the
	 * <stream version> the layout requires: with version 1 it is
	 * ...my-delivery-stream-1-2019-08-09-23-55-09-<uuid>
	 */
	expect_key("ref:241 example key (with the version)",
			   "customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/",
			   "my-delivery-stream", 1, t, example_id, NULL,
			   "customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/"
			   "my-delivery-stream-1-2019-08-09-23-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa");
	expect_key("no prefix, extension .gz", "", "orders", 3, t, example_id, ".gz",
			   "orders-3-2019-08-09-23-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa.gz");
	expect_key("NULL prefix and extension", NULL, "a.b_c-d", 12345678901LL, t,
			   example_id, NULL,
			   "a.b_c-d-12345678901-2019-08-09-23-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa");
	expect_key("the zone applies to the suffix", "p/", "s", 2, tokyo, example_id, ".json",
			   "p/s-2-2019-08-10-08-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa.json");
	expect_key("zeros give a version 4 uuid", "", "s", 1, t, zeros, ".zst",
			   "s-1-2019-08-09-23-55-09-00000000-0000-4000-8000-000000000000.zst");
	expect_key("ones give a version 4 uuid", "", "s", 1, t, ones, ".snappy",
			   "s-1-2019-08-09-23-55-09-ffffffff-ffff-4fff-bfff-ffffffffffff.snappy");
	expect_key("the last millisecond of a year", "", "s", 1,
			   (FhS3KeyTime) {INT64_C(1546300799999), 0}, zeros, NULL,
			   "s-1-2018-12-31-23-59-59-00000000-0000-4000-8000-000000000000");
	expect_key("every extension character", "", "s", 1, t, zeros, ".a0-_.*'()!z",
			   "s-1-2019-08-09-23-55-09-00000000-0000-4000-8000-000000000000.a0-_.*'()!z");
	fh_s3key_uuid(example_id, uuid);
	check_str("uuid of the example id", "a9fa96af-e4e4-409f-bac3-1f804714faaa", uuid);

	/* the whole path: default prefix, in a zone, then the key */
	if (fh_s3key_layout_parse(NULL, NULL, &layout, err) == FH_S3KEY_OK)
	{
		fh_s3key_eval_prefix(layout, tokyo, NULL, NULL, 0, prefix, err);
		expect_key("default prefix and key in +09:00", prefix, "orders", 1, tokyo,
				   example_id, ".gz",
				   "2019/08/10/08/orders-1-2019-08-10-08-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa.gz");
		fh_s3key_eval_prefix(layout, t, "http-endpoint-failed", NULL, 0, prefix, err);
		expect_key("failed records of an http stream", prefix, "web", 1, t,
				   example_id, ".gz",
				   "http-endpoint-failed/2019/08/09/23/web-1-2019-08-09-23-55-09-a9fa96af-e4e4-409f-bac3-1f804714faaa.gz");
		fh_s3key_layout_free(layout);
	}
	else
		check(0, "parse the default layout", NULL, err);

	/* S3's 1024 bytes: "s" + "-1-2019-08-09-23-55-09-" + uuid = 60 */
	s = repeat("a", 964, "");
	expected = repeat("a", 964, "s-1-2019-08-09-23-55-09-00000000-0000-4000-8000-000000000000");
	expect_key("a key of exactly 1024 bytes", s, "s", 1, t, zeros, NULL, expected);
	check(strlen(expected) == 1024, "the 1024-byte key is 1024 bytes", NULL, NULL);
	free(expected);
	free(s);
	s = repeat("a", 965, "");
	refuse_key("a key of 1025 bytes", s, "s", 1, t, NULL,
			   "object key would be 1025 bytes long; S3 allows at most 1024");
	free(s);
	s = repeat("a", 64, "");
	expected = repeat("a", 64, "-1-2019-08-09-23-55-09-00000000-0000-4000-8000-000000000000");
	expect_key("a 64-character stream name", "", s, 1, t, zeros, NULL, expected);
	free(expected);
	free(s);

	refuse_key("an empty stream name", "", "", 1, t, NULL, "invalid stream name \"\"");
	refuse_key("a NULL stream name", "", NULL, 1, t, NULL, "invalid stream name");
	refuse_key("a stream name with a slash", "", "a/b", 1, t, NULL, "invalid stream name \"a/b\"");
	refuse_key("a stream name with a space", "", "a b", 1, t, NULL, "invalid stream name \"a b\"");
	s = repeat("a", 65, "");
	refuse_key("a 65-character stream name", "", s, 1, t, NULL, "invalid stream name");
	free(s);
	refuse_key("version 0", "", "s", 0, t, NULL, "stream version 0 is not 1 or more");
	refuse_key("version -1", "", "s", -1, t, NULL, "stream version -1 is not 1 or more");
	refuse_key("an extension without a dot", "", "s", 1, t, "gz",
			   "file extension \"gz\" must be a \".\" followed by at least one character");
	refuse_key("an extension of a dot alone", "", "s", 1, t, ".",
			   "file extension \".\" must be a \".\" followed by at least one character");
	refuse_key("an upper-case extension", "", "s", 1, t, ".GZ",
			   "file extension \".GZ\" has a character other than 0-9 a-z ! - _ . * ' ( )");
	refuse_key("an extension with a slash", "", "s", 1, t, ".a/b", "has a character other than");
	refuse_key("an extension with a space", "", "s", 1, t, ".a b", "has a character other than");
	s = repeat("a", 128, "");
	s[0] = '.';
	check(fh_s3key_check_extension(s, err) == FH_S3KEY_OK, "a 128-character extension", NULL, err);
	free(s);
	s = repeat("a", 129, "");
	s[0] = '.';
	refuse_key("a 129-character extension", "", "s", 1, t, s,
			   "file extension has 129 characters; at most 128 are allowed");
	free(s);
	check(fh_s3key_check_extension("", err) == FH_S3KEY_OK &&
		  fh_s3key_check_extension(NULL, err) == FH_S3KEY_OK,
		  "no extension is fine", NULL, err);
	refuse_key("a prefix that is not UTF-8", "a\xff/", "s", 1, t, NULL,
			   "object key prefix is not valid UTF-8 at byte 2");
	refuse_key("a time after 9999", "", "s", 1, (FhS3KeyTime) {T_MAX + 1, 0}, NULL,
			   "is outside the years 1 to 9999");
	refuse_key("an offset beyond 18 hours", "", "s", 1,
			   (FhS3KeyTime) {0, 18 * 3600 + 1}, NULL, "is out of range");
}

/* ---------- random strings ---------- */

static bool
random_shape(const char *s)
{
	int			i;

	if (strlen(s) != FH_S3KEY_RANDOM_LEN || s[8] != '-')
		return false;
	for (i = 0; i < FH_S3KEY_RANDOM_LEN; i++)
		if (i != 8 && !strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void
check_random_strings(void)
{
	unsigned char id2[16];
	char		a[FH_S3KEY_RANDOM_LEN + 1];
	char		b[FH_S3KEY_RANDOM_LEN + 1];
	char		c[FH_S3KEY_RANDOM_LEN + 1];
	char		d[FH_S3KEY_RANDOM_LEN + 1];
	char		e[FH_S3KEY_RANDOM_LEN + 1];
	const char *rp[2];
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	char		first[FH_S3KEY_PREFIX_BUFSIZE];
	char		again[FH_S3KEY_PREFIX_BUFSIZE];
	FhS3KeyTime t = {T_2018_08_27_1030, 0};
	int			i;
	int			distinct = 1;

	fh_s3key_random_string(example_id, 0, a);
	fh_s3key_random_string(example_id, 0, b);
	fh_s3key_random_string(example_id, 1, c);
	memcpy(id2, example_id, 16);
	id2[15] ^= 1;
	fh_s3key_random_string(id2, 0, d);
	id2[15] ^= 1;
	id2[0] ^= 0x80;
	fh_s3key_random_string(id2, 0, e);

	check(random_shape(a), "a random string is 8 hex, '-', 2 hex like 046b6c7f-0b", "xxxxxxxx-xx", a);
	check_str("the same id and index give the same string", a, b);
	/* pinned: a change would move in-flight retries to new keys */
	check_str("random string 0 of the example id", "6b6e2fad-84", a);
	check_str("random string 1 of the example id", "2513546d-59", c);
	check(strcmp(a, c) != 0, "another index gives another string", NULL, c);
	check(strcmp(a, d) != 0, "the last bit of the id changes the string", a, d);
	check(strcmp(a, e) != 0, "the first bit of the id changes the string", a, e);
	for (i = 1; i < 200 && distinct; i++)
	{
		fh_s3key_random_string(example_id, i, b);
		distinct = random_shape(b) && strcmp(a, b) != 0;
	}
	check(distinct, "200 indexes give well-formed strings unlike index 0", NULL, b);

	/* a retried batch evaluates its prefix to the same key */
	if (fh_s3key_layout_parse("!{firehose:random-string}/x/!{firehose:random-string}/",
							  EOT, &layout, err) != FH_S3KEY_OK)
	{
		check(0, "parse a prefix with two random strings", NULL, err);
		return;
	}
	fh_s3key_random_string(example_id, 0, a);
	fh_s3key_random_string(example_id, 1, c);
	rp[0] = a;
	rp[1] = c;
	fh_s3key_eval_prefix(layout, t, NULL, rp, 2, first, err);
	fh_s3key_random_string(example_id, 0, b);
	fh_s3key_random_string(example_id, 1, d);
	rp[0] = b;
	rp[1] = d;
	fh_s3key_eval_prefix(layout, t, NULL, rp, 2, again, err);
	check(strcmp(first, again) == 0 && strlen(first) == 11 + 3 + 11 + 1 + 14,
		  "a retry evaluates the prefix to the same string", first, again);
	fh_s3key_layout_free(layout);
}

/* ---------- time zones ---------- */

static void
check_zones(void)
{
	static const struct
	{
		const char *name;
		FhS3KeyStatus status;
		int32_t		offset;
		const char *fragment;
	}			cases[] = {
		{NULL, FH_S3KEY_OK, 0, NULL},
		{"", FH_S3KEY_OK, 0, NULL},
		{"UTC", FH_S3KEY_OK, 0, NULL},
		{"+09:00", FH_S3KEY_OK, 32400, NULL},
		{"-05:30", FH_S3KEY_OK, -19800, NULL},
		{"+0530", FH_S3KEY_OK, 19800, NULL},
		{"-03", FH_S3KEY_OK, -10800, NULL},
		{"+00:00", FH_S3KEY_OK, 0, NULL},
		{"UTC+09:00", FH_S3KEY_OK, 32400, NULL},
		{"GMT-03", FH_S3KEY_OK, -10800, NULL},
		{"+18:00", FH_S3KEY_OK, 64800, NULL},
		{"-18:00", FH_S3KEY_OK, -64800, NULL},
		{"Asia/Tokyo", FH_S3KEY_ZONE_NAMED, 0, NULL},
		{"America/Los_Angeles", FH_S3KEY_ZONE_NAMED, 0, NULL},
		{"GMT", FH_S3KEY_ZONE_NAMED, 0, NULL},
		{"+18:01", FH_S3KEY_EINVAL, 0, "time zone offset \"+18:01\" is out of range"},
		{"+19", FH_S3KEY_EINVAL, 0, "is out of range"},
		{"+09:60", FH_S3KEY_EINVAL, 0, "is out of range"},
		{"+9:00", FH_S3KEY_EINVAL, 0, "time zone offset \"+9:00\" is not of the form +HH:MM, +HHMM or +HH"},
		{"+09:0", FH_S3KEY_EINVAL, 0, "is not of the form"},
		{"+09:000", FH_S3KEY_EINVAL, 0, "is not of the form"},
		{"+", FH_S3KEY_EINVAL, 0, "is not of the form"},
		{"UTC+", FH_S3KEY_EINVAL, 0, "is not of the form"},
		{"Etc/GMT+9", FH_S3KEY_EINVAL, 0, "invalid time zone \"Etc/GMT+9\""},
		{"America/Port-au-Prince", FH_S3KEY_EINVAL, 0, "invalid time zone"},
		{"Asia/Tokyo ", FH_S3KEY_EINVAL, 0, "invalid time zone"},
		{"UTC9", FH_S3KEY_EINVAL, 0, "invalid time zone"},
		{"Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", FH_S3KEY_ZONE_NAMED, 0, NULL},
		{"Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", FH_S3KEY_EINVAL, 0, "invalid time zone"},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int32_t		offset = 12345;
		char		err[FH_S3KEY_ERROR_LEN];
		char		what[120];
		FhS3KeyStatus st = fh_s3key_parse_zone(cases[i].name, &offset, err);

		snprintf(what, sizeof(what), "time zone %s", cases[i].name ? cases[i].name : "NULL");
		if (cases[i].status == FH_S3KEY_EINVAL)
			check(st == FH_S3KEY_EINVAL && strstr(err, cases[i].fragment),
				  what, cases[i].fragment, err);
		else
			check(st == cases[i].status && offset == cases[i].offset && err[0] == '\0',
				  what, cases[i].status == FH_S3KEY_OK ? "a fixed offset" : "a name", err);
	}
}

/*
 * Dynamic partitioning: the keys of a Prefix in order, their values in the
 * evaluated prefix beside the timestamp, and the values refused.
 */
static void
check_partition_keys(void)
{
	FhS3KeyLayout *layout;
	char		err[FH_S3KEY_ERROR_LEN];
	char		out[FH_S3KEY_PREFIX_BUFSIZE];
	char		name[FH_S3KEY_MAX_KEY_NAME + 1];
	FhS3KeyTime t = {T_2024_03_05_1200, 0};
	const char *values[2] = {"acme", "7"};
	const char *bad[][2] = {
		{"", "a partition key value is empty"},
		{"a..b", "the partition key value \"a..b\" contains \"..\""},
		{"..", "contains \"..\""},
		{"a\nb", "contains a control character"},
		{"a\x7f", "contains a control character"},
		{"\xc3", "is not valid UTF-8"},
	};
	char	   *long_value;
	bool		lambda;
	size_t		i;

	if (fh_s3key_layout_parse("data/customer=!{partitionKeyFromQuery:customer}/s=!{partitionKeyFromLambda:shard}/dt=!{timestamp:yyyy-MM-dd}/",
							  "err/" EOT "/", &layout, err) != FH_S3KEY_OK)
	{
		check(0, "parse a partitioned prefix", "accepted", err);
		return;
	}
	check(fh_s3key_npartition_keys(layout) == 2, "two partition keys", "2", "other");
	lambda = fh_s3key_partition_key(layout, 0, name);
	check_str("first key's name", "customer", name);
	check(!lambda, "first key from the query", "query", "lambda");
	lambda = fh_s3key_partition_key(layout, 1, name);
	check_str("second key's name", "shard", name);
	check(lambda, "second key from lambda", "lambda", "query");
	check(fh_s3key_eval_prefix_keys(layout, t, NULL, NULL, 0, values, 2, out, err) == FH_S3KEY_OK,
		  "evaluate with key values", "ok", err);
	check_str("evaluated partitioned prefix", "data/customer=acme/s=7/dt=2024-03-05/", out);
	check(fh_s3key_eval_prefix_keys(layout, t, NULL, NULL, 0, values, 1, out, err) == FH_S3KEY_EINVAL &&
		  strstr(err, "2 partition key values are needed, 1 were given") != NULL,
		  "too few values", "refused", err);
	check(fh_s3key_eval_prefix(layout, t, "processing-failed", NULL, 0, out, err) == FH_S3KEY_OK,
		  "error prefix of a partitioned layout", "ok", err);
	check_str("error prefix needs no key", "err/processing-failed/", out);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		const char *v[2] = {bad[i][0], "x"};

		check(fh_s3key_eval_prefix_keys(layout, t, NULL, NULL, 0, v, 2, out, err) == FH_S3KEY_EINVAL &&
			  strstr(err, bad[i][1]) != NULL && out[0] == '\0',
			  bad[i][0], bad[i][1], err);
	}
	/* 480 characters of value and 40 of the rest: over 512 in all */
	long_value = repeat("v", 480, "");
	values[0] = long_value;
	check(fh_s3key_eval_prefix_keys(layout, t, NULL, NULL, 0, values, 2, out, err) == FH_S3KEY_EINVAL &&
		  strstr(err, "prefix is longer than 512 characters after evaluation") != NULL,
		  "evaluated prefix over 512", "refused", err);
	free(long_value);
	long_value = repeat("v", 513, "");
	check(fh_s3key_check_key_value(long_value, err) == FH_S3KEY_EINVAL &&
		  strstr(err, "513 characters; at most 512") != NULL, "value over 512", "refused", err);
	free(long_value);
	fh_s3key_layout_free(layout);
}

int
main(void)
{
	check_parse_table();
	check_lengths();
	check_eval_tables();
	check_eval_refusals();
	check_keys();
	check_random_strings();
	check_zones();
	check_partition_keys();
	printf("s3keys: %d of %d checks pass\n", checks_run - checks_failed,
		   checks_run);
	return checks_failed ? 1 : 0;
}
