/*-------------------------------------------------------------------------
 *
 * s3_keys.c
 *	  S3 object keys as Firehose writes them: the Prefix and
 *	  ErrorOutputPrefix with their !{namespace:value} expressions, checked
 *	  when a stream is created and evaluated for every object, and the key
 *	  <evaluated prefix><stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><ext>.
 *
 * Plain C99 with no PostgreSQL header (malloc and free, nothing global), so
 * test/unit/s3_keys_test.c builds it alone.  The clock, the time zone's
 * offset and the random strings are inputs: the same batch always gets the
 * same key, so a retried upload overwrites its object instead of writing
 * the data twice.
 *
 * The rules, with their line in ../shared/reference/firehose.md ("ref:N")
 * or in the source it cites:
 *	- key = <evaluated prefix><stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-
 *	  <ss>-<uuid><file extension> (ref:236), the version starting at 1
 *	  (ref:237), the stream name 1 to 64 characters (ref:37) of
 *	  [a-zA-Z0-9_.-] (botocore shape DeliveryStreamName);
 *	- default prefix yyyy/MM/dd/HH/, CustomTimeZone applying to both prefix
 *	  and suffix (ref:239); the time is the arrival time of the oldest
 *	  record in the object (ref:240);
 *	- !{timestamp:<Java DateTimeFormatter pattern>}: every use the same
 *	  instant, text in single quotes literal (ref:256);
 *	  !{firehose:random-string}: 11 characters, new on each use, allowed in
 *	  both prefixes (ref:257); !{firehose:error-output-type}: one of six
 *	  types, and dynamic partitioning's partitioning-failed and
 *	  activePartitionExceeded (ref 3.5, ref:289); ErrorOutputPrefix only,
 *	  the same on each use (ref:258);
 *	  !{partitionKeyFromQuery:name} and !{partitionKeyFromLambda:name}
 *	  (ref:259-260): a partition key's value, which the caller evaluates
 *	  per record (dynamic partitioning, ref 3.5) and passes in; a value is
 *	  checked before it goes into a key (not empty, no "..", no control
 *	  character, at most 512 characters like the whole prefix);
 *	- a Prefix without a timestamp expression gets
 *	  !{timestamp:yyyy/MM/dd/HH/} appended (ref:263); "!{" only inside
 *	  expressions (ref:264); at most 512 characters after evaluation
 *	  (ref:265); an ErrorOutputPrefix that is set contains
 *	  !{firehose:error-output-type}, the Prefix never (ref:266);
 *	  ErrorOutputPrefix may be left out only when the Prefix has no
 *	  expression (ref:267), failed records then going to
 *	  <prefix><error-output-type>/yyyy/MM/dd/HH/ (ref:269, see below);
 *	  partitionKeyFrom* is not allowed in ErrorOutputPrefix (ref:273);
 *	- Prefix and ErrorOutputPrefix have 0 to 1024 characters (ref:57-58)
 *	  and match the API model's pattern ".*", which in Java (the service's
 *	  language) excludes the line terminators \n \r U+0085 U+2028 U+2029
 *	  (botocore firehose/2015-08-04/service-2.json, shapes Prefix and
 *	  ErrorOutputPrefix, the source ref:10 names); S3 keys are UTF-8;
 *	- FileExtension has 0 to 128 characters (ref:68) matching
 *	  "^$|\.[0-9a-z!\-_.*'()]+" (same file, shape FileExtension);
 *	- CustomTimeZone has 0 to 50 characters matching "^$|[a-zA-Z/_]+"
 *	  (ref:69).
 *
 * Where the reference contradicts itself or is silent, and what is done:
 *	- ref:268-269 give "<prefix>yyyy/MM/DDD/HH/" and
 *	  "<prefix><error-output-type>YYYY/MM/DDD/HH/" ("DDD = day of year",
 *	  sic), while ref:239 and ref:263 say yyyy/MM/dd/HH/, and the example
 *	  (ref:270) and the folders of section 3.8 ("http-endpoint-failed/",
 *	  ref:319) have a slash after the type (ref:658 lists the conflict):
 *	  dd and <type>/ are used;
 *	- the example of ref:270 shows "myFirehosePrefix/2018/08/27/", a slash
 *	  inserted and no hour, against the rule of ref:263: the rule is
 *	  followed (a prefix meant as a folder ends with '/');
 *	- "characters" are counted as Java counts them, in UTF-16 units;
 *	- the 512-character limit is checked when the layout is parsed, against
 *	  the longest the prefix can become (longest month name, longest error
 *	  output type, ...), so a stream is refused at creation rather than
 *	  failing at delivery; evaluation checks the real length again;
 *	- a timestamp expression ends at the first '}', quotes or not (Java
 *	  reserves '{' and '}' in patterns anyway);
 *	- the pattern letters supported are y u M L d D H h K k m s S E a, with
 *	  Java's widths and English names; the other letters of
 *	  DateTimeFormatter (era, quarter, week-based fields, zones, ...) are
 *	  refused by name rather than printed wrongly;
 *	- the random strings look like ref:257's example "046b6c7f-0b";
 *	  fh_s3key_random_string derives them from the batch's id so that a
 *	  retry evaluates the prefix to the same string.
 *
 * Time zones: the evaluation takes the zone's UTC offset at the instant.
 * "UTC" and fixed offsets are parsed here; a zone name such as Asia/Tokyo
 * is resolved by the caller with PostgreSQL's own time zone library
 * (pg_tzset, pg_localtime), which keeps no process-wide state, where the C
 * library would need setenv("TZ") and tzset(), a global.
 *
 *-------------------------------------------------------------------------
 */
#include "s3_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define MS_PER_DAY		INT64_C(86400000)
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z, in epoch ms */
#define MIN_EPOCH_MS	INT64_C(-62135596800000)
#define MAX_EPOCH_MS	INT64_C(253402300799999)
#define MAX_OFFSET_S	(18 * 3600)		/* java.time.ZoneOffset's range */
#define MAX_STREAM_NAME 64
#define QUOTE_MAX		60		/* bytes of an expression quoted in a message */

#define DEFAULT_TIMESTAMP	"yyyy/MM/dd/HH/"
#define KEY_NAME_CHARS	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
#define ERROR_TYPE_EXPR		"!{firehose:error-output-type}"

/* ref:258 and ref:319-320; the longest bounds an error output prefix */
static const char *const error_output_types[] = {
	"processing-failed",
	"AmazonOpenSearchService-failed",
	"splunk-failed",
	"format-conversion-failed",
	"http-endpoint-failed",
	"decompression-failed",
	"partitioning-failed",		/* dynamic partitioning (ref 3.5) */
	"activePartitionExceeded",	/* beyond the active partitions (ref:289) */
	/*
	 * The Redshift destination's folders (ref:121, ref:321): the manifests
	 * its COPY reads, and those of the objects it skipped
	 */
	"manifests",
	"errors/manifests",
	NULL
};

/* the longest error output type, which bounds an error output prefix */
static size_t
longest_error_type(void)
{
	size_t		longest = 0;
	int			k;

	for (k = 0; error_output_types[k]; k++)
		if (strlen(error_output_types[k]) > longest)
			longest = strlen(error_output_types[k]);
	return longest;
}

static const char *const month_names[12] = {
	"January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December"
};

/* Java's DayOfWeek order: Monday is 1 */
static const char *const day_names[7] = {
	"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
	"Sunday"
};

/* ---------- the parsed layout ---------- */

typedef enum ItemKind
{
	ITEM_LITERAL,				/* pool[off .. off+len) */
	ITEM_FIELD,					/* a pattern letter repeated count times */
	ITEM_RANDOM,				/* !{firehose:random-string} */
	ITEM_ERROR_TYPE,			/* !{firehose:error-output-type} */
	ITEM_PARTITION_KEY			/* !{partitionKeyFrom*:name}: pool[off ..
								 * off+len) is the name, count 1 for Lambda */
} ItemKind;

typedef struct Item
{
	ItemKind	kind;
	char		letter;
	int			count;
	size_t		off;
	size_t		len;
} Item;

typedef struct Template
{
	Item	   *items;
	int			nitems;
	int			cap;
	int			nrandom;
	int			nkeys;			/* partition key items */
	bool		has_expression;
	bool		has_timestamp;
	bool		has_error_type;
	size_t		max_units;		/* longest evaluation, in UTF-16 units */
} Template;

struct FhS3KeyLayout
{
	Template	prefix;
	Template	error;
	char	   *pool;			/* literal text of both templates */
	size_t		pool_len;
	size_t		pool_cap;
	bool		failed;			/* an allocation failed */
};

/* ---------- messages ---------- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static FhS3KeyStatus
fail(char *error, const char *fmt,...)
{
	va_list		ap;

	if (error != NULL)
	{
		va_start(ap, fmt);
		vsnprintf(error, FH_S3KEY_ERROR_LEN, fmt, ap);
		va_end(ap);
	}
	return FH_S3KEY_EINVAL;
}

static FhS3KeyStatus
fail_nomem(char *error)
{
	if (error != NULL)
		snprintf(error, FH_S3KEY_ERROR_LEN, "out of memory");
	return FH_S3KEY_ENOMEM;
}

/*
 * Copy s[0..len) into out (QUOTE_MAX + 4 bytes) for a message, cut at a
 * character boundary with "..." when it is longer than QUOTE_MAX bytes.
 */
static const char *
quote_text(char *out, const char *s, size_t len)
{
	size_t		n = len;

	if (n > QUOTE_MAX)
	{
		n = QUOTE_MAX;
		while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	strcpy(out + n, n < len ? "..." : "");
	return out;
}

/* ---------- UTF-8 ---------- */

/* UTF-16 units of well-formed UTF-8 text: 2 for a 4-byte character */
static size_t
utf16_units(const char *s, size_t len)
{
	size_t		units = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c & 0xC0) != 0x80)
			units += (c >= 0xF0) ? 2 : 1;
	}
	return units;
}

/*
 * The checks on a prefix as given: well-formed UTF-8, no line terminator
 * (the API pattern ".*" in Java: \n, \r, U+0085, U+2028, U+2029), at most
 * 1024 characters.
 */
static FhS3KeyStatus
check_prefix_text(const char *what, const char *s, char *error)
{
	size_t		len = strlen(s);
	size_t		i = 0;
	size_t		nchar = 0;

	while (i < len)
	{
		uint32_t	cp;
		int			n = fh_utf8_decode((const unsigned char *) s + i, len - i, &cp);

		if (n == 0)
			return fail(error, "%s is not valid UTF-8 at byte %zu", what,
						i + 1);
		nchar++;
		if (cp == '\n' || cp == '\r' || cp == 0x85 || cp == 0x2028 ||
			cp == 0x2029)
			return fail(error, "%s contains a line break at character %zu",
						what, nchar);
		i += n;
	}
	if (utf16_units(s, len) > FH_S3KEY_MAX_PREFIX_CHARS)
		return fail(error, "%s has %zu characters; at most %d are allowed",
					what, utf16_units(s, len), FH_S3KEY_MAX_PREFIX_CHARS);
	return FH_S3KEY_OK;
}

/* ---------- building templates ---------- */

static Item *
add_item(FhS3KeyLayout *layout, Template *t, ItemKind kind)
{
	Item	   *item;

	if (layout->failed)
		return NULL;
	if (t->nitems == t->cap)
	{
		int			cap = t->cap ? t->cap * 2 : 16;
		Item	   *items = realloc(t->items, cap * sizeof(Item));

		if (items == NULL)
		{
			layout->failed = true;
			return NULL;
		}
		t->items = items;
		t->cap = cap;
	}
	item = &t->items[t->nitems++];
	memset(item, 0, sizeof(*item));
	item->kind = kind;
	return item;
}

/* append literal text, merged with a literal just before it */
static void
add_literal(FhS3KeyLayout *layout, Template *t, const char *s, size_t len)
{
	Item	   *last;
	Item	   *item;

	if (len == 0 || layout->failed)
		return;
	if (layout->pool_len + len + 1 > layout->pool_cap)
	{
		size_t		cap = layout->pool_cap ? layout->pool_cap : 256;
		char	   *pool;

		while (cap < layout->pool_len + len + 1)
			cap *= 2;
		pool = realloc(layout->pool, cap);
		if (pool == NULL)
		{
			layout->failed = true;
			return;
		}
		layout->pool = pool;
		layout->pool_cap = cap;
	}
	memcpy(layout->pool + layout->pool_len, s, len);
	last = t->nitems ? &t->items[t->nitems - 1] : NULL;
	if (last && last->kind == ITEM_LITERAL &&
		last->off + last->len == layout->pool_len)
		last->len += len;
	else if ((item = add_item(layout, t, ITEM_LITERAL)) != NULL)
	{
		item->off = layout->pool_len;
		item->len = len;
	}
	layout->pool_len += len;
	t->max_units += utf16_units(s, len);
}

/*
 * The widest a pattern letter repeated count times prints, for years 1 to
 * 9999, or 0 when Java refuses the count ("Too many pattern letters").
 * Widths and counts follow DateTimeFormatterBuilder.appendPattern.
 */
static int
field_width(char letter, int count)
{
	switch (letter)
	{
		case 'y':
		case 'u':
			/* yy: two digits; else at least count digits, up to 19 */
			if (count > 19)
				return 0;
			return count == 2 ? 2 : (count > 4 ? count : 4);
		case 'M':
		case 'L':
			/* number, two digits, "Sep", "September", "S" */
			if (count > 5)
				return 0;
			return (count <= 2) ? 2 : (count == 3) ? 3 : (count == 4) ? 9 : 1;
		case 'd':
		case 'H':
		case 'h':
		case 'K':
		case 'k':
		case 'm':
		case 's':
			return count <= 2 ? 2 : 0;
		case 'D':
			return count <= 3 ? 3 : 0;
		case 'S':
			/* fraction of second, count digits */
			return count <= 9 ? count : 0;
		case 'E':
			/* "Wed" (1 to 3), "Wednesday", "W" */
			if (count > 5)
				return 0;
			return (count <= 3) ? 3 : (count == 4) ? 9 : 1;
		case 'a':
			return count == 1 ? 2 : 0;
	}
	return -1;					/* not supported */
}

/*
 * Compile the pattern of !{timestamp:<pattern>} into t, with Java
 * DateTimeFormatter's rules: ASCII letters are fields; text in single
 * quotes is literal and '' is one quote, inside quotes or not; '[' and ']'
 * delimit optional sections, always printed here as every field is known;
 * '{', '}' and '#' are reserved; anything else is printed as it is.
 */
static FhS3KeyStatus
compile_pattern(FhS3KeyLayout *layout, Template *t, const char *what,
				const char *expr, size_t exprlen,
				const char *p, size_t len, char *error)
{
	char		q[QUOTE_MAX + 4];
	size_t		i = 0;
	int			depth = 0;

	if (len == 0)
		return fail(error, "%s: empty pattern in \"%s\"", what,
					quote_text(q, expr, exprlen));
	while (i < len)
	{
		char		c = p[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
		{
			size_t		n = 1;
			int			width;
			Item	   *item;

			while (i + n < len && p[i + n] == c)
				n++;
			width = field_width(c, n > 100 ? 100 : (int) n);
			if (width < 0)
				return fail(error,
							"%s: unsupported pattern letter \"%c\" in \"%s\"; the letters are y u M L d D H h K k m s S E a",
							what, c, quote_text(q, expr, exprlen));
			if (width == 0)
				return fail(error, "%s: too many pattern letters \"%.*s\" in \"%s\"",
							what, (int) (n > 20 ? 20 : n), p + i,
							quote_text(q, expr, exprlen));
			if ((item = add_item(layout, t, ITEM_FIELD)) != NULL)
			{
				item->letter = c;
				item->count = (int) n;
			}
			t->max_units += width;
			i += n;
		}
		else if (c == '\'')
		{
			size_t		j;

			if (i + 1 < len && p[i + 1] == '\'')
			{
				add_literal(layout, t, "'", 1);
				i += 2;
				continue;
			}
			for (j = i + 1;; j++)
			{
				if (j >= len)
					return fail(error, "%s: unterminated quoted text in \"%s\"",
								what, quote_text(q, expr, exprlen));
				if (p[j] != '\'')
					add_literal(layout, t, p + j, 1);
				else if (j + 1 < len && p[j + 1] == '\'')
				{
					add_literal(layout, t, "'", 1);
					j++;
				}
				else
					break;
			}
			i = j + 1;
		}
		else if (c == '[')
		{
			depth++;
			i++;
		}
		else if (c == ']')
		{
			if (depth == 0)
				return fail(error, "%s: \"]\" without \"[\" in \"%s\"", what,
							quote_text(q, expr, exprlen));
			depth--;
			i++;
		}
		else if (c == '{' || c == '}' || c == '#')
			return fail(error, "%s: reserved character \"%c\" in \"%s\"", what,
						c, quote_text(q, expr, exprlen));
		else
		{
			add_literal(layout, t, p + i, 1);
			i++;
		}
	}
	t->has_timestamp = true;
	return FH_S3KEY_OK;
}

/*
 * Parse one prefix (text, already checked by check_prefix_text) into t.
 * what names it in messages; is_error says whether it is the
 * ErrorOutputPrefix, where !{firehose:error-output-type} is allowed and
 * the partitionKeyFrom* namespaces are not.
 */
static FhS3KeyStatus
parse_template(FhS3KeyLayout *layout, Template *t, const char *what,
			   bool is_error, const char *text, char *error)
{
	char		q[QUOTE_MAX + 4];
	const char *s = text;
	FhS3KeyStatus st;

	for (;;)
	{
		const char *open = strstr(s, "!{");
		const char *close;
		const char *nested;
		const char *colon;
		const char *ns;
		const char *value;
		size_t		nslen;
		size_t		valuelen;
		size_t		exprlen;

		if (open == NULL)
		{
			add_literal(layout, t, s, strlen(s));
			break;
		}
		add_literal(layout, t, s, open - s);

		/* ref:264: the sequence "!{" may appear only in expressions */
		close = strchr(open + 2, '}');
		nested = strstr(open + 2, "!{");
		if (close == NULL)
			return fail(error, "%s has \"!{\" without a closing \"}\": \"%s\"",
						what, quote_text(q, open, strlen(open)));
		exprlen = close + 1 - open;
		if (nested != NULL && nested < close)
			return fail(error, "%s has \"!{\" inside the expression \"%s\"; \"!{\" may only start an expression",
						what, quote_text(q, open, exprlen));
		colon = memchr(open + 2, ':', close - (open + 2));
		if (colon == NULL)
			return fail(error, "%s: expression \"%s\" has no \":\" between namespace and value",
						what, quote_text(q, open, exprlen));
		ns = open + 2;
		nslen = colon - ns;
		value = colon + 1;
		valuelen = close - value;
		t->has_expression = true;

#define NS_IS(name) (nslen == strlen(name) && memcmp(ns, name, nslen) == 0)
#define VALUE_IS(name) (valuelen == strlen(name) && memcmp(value, name, valuelen) == 0)
		if (NS_IS("timestamp"))
		{
			st = compile_pattern(layout, t, what, open, exprlen,
								 value, valuelen, error);
			if (st != FH_S3KEY_OK)
				return st;
		}
		else if (NS_IS("firehose") && VALUE_IS("random-string"))
		{
			/* ref:257: allowed in both prefixes, 11 characters */
			if (t->nrandom >= FH_S3KEY_MAX_RANDOM)
				return fail(error, "%s has more than %d random strings",
							what, FH_S3KEY_MAX_RANDOM);
			add_item(layout, t, ITEM_RANDOM);
			t->nrandom++;
			t->max_units += FH_S3KEY_RANDOM_LEN;
		}
		else if (NS_IS("firehose") && VALUE_IS("error-output-type"))
		{
			/* ref:258 "ErrorOutputPrefix only"; ref:266 */
			if (!is_error)
				return fail(error, "%s must not contain \"" ERROR_TYPE_EXPR "\"; it is allowed only in error_output_prefix",
							what);
			add_item(layout, t, ITEM_ERROR_TYPE);
			t->has_error_type = true;
			t->max_units += longest_error_type();
		}
		else if (NS_IS("firehose"))
			return fail(error, "%s: unknown value \"%.*s\" in \"%s\"; the firehose namespace has random-string and error-output-type",
						what, (int) (valuelen > QUOTE_MAX ? QUOTE_MAX : valuelen),
						value, quote_text(q, open, exprlen));
		else if (NS_IS("partitionKeyFromQuery") ||
				 NS_IS("partitionKeyFromLambda"))
		{
			Item	   *item;

			/* ref:273: never in ErrorOutputPrefix */
			if (is_error)
				return fail(error, "%s must not contain \"%s\"",
							what, quote_text(q, open, exprlen));
			if (valuelen == 0 || valuelen > FH_S3KEY_MAX_KEY_NAME ||
				strspn(value, KEY_NAME_CHARS) < valuelen)
				return fail(error, "%s: \"%s\" does not name a partition key; a name has 1 to %d letters, digits, '_' and '-'",
							what, quote_text(q, open, exprlen), FH_S3KEY_MAX_KEY_NAME);
			/* the name is kept in the pool, not in the template's text */
			add_literal(layout, t, value, valuelen);
			if (layout->failed)
				return fail_nomem(error);
			item = &t->items[t->nitems - 1];
			if (item->len != valuelen)
			{
				/* merged into the literal before it: split it off */
				item->len -= valuelen;
				item = add_item(layout, t, ITEM_LITERAL);
				if (item == NULL)
					return fail_nomem(error);
				item->off = layout->pool_len - valuelen;
			}
			item->kind = ITEM_PARTITION_KEY;
			item->len = valuelen;
			item->count = NS_IS("partitionKeyFromLambda") ? 1 : 0;
			t->max_units -= utf16_units(value, valuelen);
			t->nkeys++;
		}
		else
			return fail(error, "%s: unknown namespace \"%.*s\" in \"%s\"; the namespaces are timestamp and firehose",
						what, (int) (nslen > QUOTE_MAX ? QUOTE_MAX : nslen),
						ns, quote_text(q, open, exprlen));
#undef NS_IS
#undef VALUE_IS
		s = close + 1;
	}
	return FH_S3KEY_OK;
}

/* append a timestamp expression known to be valid, as from a pattern */
static void
add_timestamp(FhS3KeyLayout *layout, Template *t, const char *pattern)
{
	(void) compile_pattern(layout, t, "", pattern, strlen(pattern),
						   pattern, strlen(pattern), NULL);
}


/*
 * fh_s3key_layout_parse
 *		Check a destination's Prefix and ErrorOutputPrefix with Firehose's
 *		rules and parse them for fh_s3key_eval_prefix.
 *
 * Either may be NULL or "": not set.  On success *layout is a new layout,
 * to be released with fh_s3key_layout_free().  On failure *layout is NULL
 * and error (FH_S3KEY_ERROR_LEN bytes, or NULL) holds a message naming the
 * broken rule and the offending part: "prefix: unsupported pattern letter
 * ..." (lower case, no period, ready for errmsg).
 */
FhS3KeyStatus
fh_s3key_layout_parse(const char *prefix, const char *error_output_prefix,
					  FhS3KeyLayout **layout_out,
					  char error[FH_S3KEY_ERROR_LEN])
{
	FhS3KeyLayout *layout;
	FhS3KeyStatus st;
	bool		error_set = error_output_prefix && *error_output_prefix;

	*layout_out = NULL;
	if (error != NULL)
		error[0] = '\0';
	if (prefix == NULL)
		prefix = "";

	st = check_prefix_text("prefix", prefix, error);
	if (st == FH_S3KEY_OK && error_set)
		st = check_prefix_text("error_output_prefix", error_output_prefix,
							   error);
	if (st != FH_S3KEY_OK)
		return st;

	layout = calloc(1, sizeof(FhS3KeyLayout));
	if (layout == NULL)
		return fail_nomem(error);

	st = parse_template(layout, &layout->prefix, "prefix", false, prefix,
						error);
	if (st == FH_S3KEY_OK && error_set)
	{
		st = parse_template(layout, &layout->error, "error_output_prefix",
							true, error_output_prefix, error);
		/* ref:266: if ErrorOutputPrefix is set it must contain the type */
		if (st == FH_S3KEY_OK && !layout->error.has_error_type)
			st = fail(error, "error_output_prefix must contain \"" ERROR_TYPE_EXPR "\"");
	}
	else if (st == FH_S3KEY_OK)
	{
		/*
		 * ref:267: ErrorOutputPrefix may be null only if Prefix has no
		 * expressions; failed records then go to <prefix><type> and the
		 * time folders (the slash and "dd": see the file header).
		 */
		if (layout->prefix.has_expression)
			st = fail(error, "error_output_prefix is required when prefix contains expressions");
		else
		{
			add_literal(layout, &layout->error, prefix, strlen(prefix));
			if (add_item(layout, &layout->error, ITEM_ERROR_TYPE))
				layout->error.has_error_type = true;
			layout->error.max_units += longest_error_type();
			add_literal(layout, &layout->error, "/", 1);
			add_timestamp(layout, &layout->error, DEFAULT_TIMESTAMP);
		}
	}

	/* ref:263: no timestamp expression in Prefix: append the default */
	if (st == FH_S3KEY_OK && !layout->prefix.has_timestamp)
		add_timestamp(layout, &layout->prefix, DEFAULT_TIMESTAMP);

	/* ref:265: each prefix is at most 512 characters after evaluation */
	if (st == FH_S3KEY_OK && layout->prefix.max_units > FH_S3KEY_MAX_EVAL_CHARS)
		st = fail(error, "prefix can be %zu characters long after evaluation; at most %d are allowed",
				  layout->prefix.max_units, FH_S3KEY_MAX_EVAL_CHARS);
	if (st == FH_S3KEY_OK && layout->error.max_units > FH_S3KEY_MAX_EVAL_CHARS)
		st = fail(error, "error_output_prefix%s can be %zu characters long after evaluation; at most %d are allowed",
				  error_set ? "" : " (derived from prefix)",
				  layout->error.max_units, FH_S3KEY_MAX_EVAL_CHARS);

	if (st == FH_S3KEY_OK && layout->failed)
		st = fail_nomem(error);
	if (st != FH_S3KEY_OK)
	{
		fh_s3key_layout_free(layout);
		return st;
	}
	*layout_out = layout;
	return FH_S3KEY_OK;
}

void
fh_s3key_layout_free(FhS3KeyLayout *layout)
{
	if (layout == NULL)
		return;
	free(layout->prefix.items);
	free(layout->error.items);
	free(layout->pool);
	free(layout);
}

/*
 * fh_s3key_nrandom
 *		How many random strings evaluating the Prefix (error_output false)
 *		or the ErrorOutputPrefix (true) takes: one per
 *		!{firehose:random-string}.
 */
int
fh_s3key_nrandom(const FhS3KeyLayout *layout, bool error_output)
{
	return error_output ? layout->error.nrandom : layout->prefix.nrandom;
}

/*
 * fh_s3key_npartition_keys
 *		How many !{partitionKeyFromQuery:...} and !{partitionKeyFromLambda:...}
 *		the Prefix has (0: no dynamic partitioning).
 */
int
fh_s3key_npartition_keys(const FhS3KeyLayout *layout)
{
	return layout->prefix.nkeys;
}

/*
 * fh_s3key_partition_key
 *		The k-th partition key expression of the Prefix, in order: its name
 *		(into name, FH_S3KEY_MAX_KEY_NAME + 1 bytes) and whether it is
 *		partitionKeyFromLambda (true) or partitionKeyFromQuery (false).
 */
bool
fh_s3key_partition_key(const FhS3KeyLayout *layout, int k,
					   char name[FH_S3KEY_MAX_KEY_NAME + 1])
{
	int			i;

	for (i = 0; i < layout->prefix.nitems; i++)
	{
		const Item *item = &layout->prefix.items[i];

		if (item->kind != ITEM_PARTITION_KEY || k-- > 0)
			continue;
		memcpy(name, layout->pool + item->off, item->len);
		name[item->len] = '\0';
		return item->count == 1;
	}
	name[0] = '\0';
	return false;
}

/*
 * fh_s3key_check_key_value
 *		May value (a partition key's value, UTF-8) go into an object key?
 *		Not when it is empty, longer than a whole evaluated prefix, not
 *		UTF-8, or has a control character or "..", which would make a key
 *		S3 tools read as a path out of the prefix.
 */
FhS3KeyStatus
fh_s3key_check_key_value(const char *value, char error[FH_S3KEY_ERROR_LEN])
{
	char		q[QUOTE_MAX + 4];
	size_t		len = strlen(value);
	size_t		i = 0;

	if (len == 0)
		return fail(error, "a partition key value is empty");
	if (strstr(value, "..") != NULL)
		return fail(error, "the partition key value \"%s\" contains \"..\"",
					quote_text(q, value, len));
	while (i < len)
	{
		uint32_t	cp;
		int			n = fh_utf8_decode((const unsigned char *) value + i, len - i, &cp);

		if (n == 0)
			return fail(error, "a partition key value is not valid UTF-8");
		if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) ||
			cp == 0x2028 || cp == 0x2029)
			return fail(error, "the partition key value \"%s\" contains a control character",
						quote_text(q, value, len));
		i += n;
	}
	if (utf16_units(value, len) > FH_S3KEY_MAX_EVAL_CHARS)
		return fail(error, "a partition key value has %zu characters; at most %d are allowed",
					utf16_units(value, len), FH_S3KEY_MAX_EVAL_CHARS);
	return FH_S3KEY_OK;
}

/* ---------- time ---------- */

typedef struct CivilTime
{
	int			year;			/* 1 .. 9999 */
	int			month;			/* 1 .. 12 */
	int			day;			/* 1 .. 31 */
	int			yday;			/* 1 .. 366 */
	int			wday;			/* 1 (Monday) .. 7 (Sunday) */
	int			hour;
	int			minute;
	int			second;
	int			millisecond;
} CivilTime;

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/*
 * Local civil time of t, with the proleptic Gregorian calendar as
 * java.time uses it.  Days to date: H. Hinnant's civil_from_days
 * (http://howardhinnant.github.io/date_algorithms.html).  Fails outside
 * the years 1 to 9999 or for an offset beyond +-18:00.
 */
static FhS3KeyStatus
civil_time(FhS3KeyTime t, CivilTime *c, char *error)
{
	static const int cumdays[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243,
	273, 304, 334};
	int64_t		local;
	int64_t		days;
	int64_t		ms;
	int64_t		era;
	int64_t		doe;
	int64_t		yoe;
	int64_t		doy;
	int64_t		mp;

	if (t.utc_offset_s < -MAX_OFFSET_S || t.utc_offset_s > MAX_OFFSET_S)
		return fail(error, "time zone offset %d s is out of range (at most 18 hours)",
					(int) t.utc_offset_s);
	if (t.epoch_ms < MIN_EPOCH_MS - INT64_C(1000) * t.utc_offset_s ||
		t.epoch_ms > MAX_EPOCH_MS - INT64_C(1000) * t.utc_offset_s)
		return fail(error, "time %lld ms is outside the years 1 to 9999",
					(long long) t.epoch_ms);
	local = t.epoch_ms + INT64_C(1000) * t.utc_offset_s;
	days = local / MS_PER_DAY;
	ms = local % MS_PER_DAY;
	if (ms < 0)
	{
		ms += MS_PER_DAY;
		days--;
	}
	/* 1970-01-01 was a Thursday (4) */
	c->wday = (int) (((days % 7) + 7 + 3) % 7) + 1;

	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	c->day = (int) (doy - (153 * mp + 2) / 5 + 1);
	c->month = (int) (mp < 10 ? mp + 3 : mp - 9);
	c->year = (int) (yoe + era * 400 + (c->month <= 2));
	c->yday = cumdays[c->month - 1] + c->day +
		(c->month > 2 && is_leap(c->year) ? 1 : 0);

	c->hour = (int) (ms / 3600000);
	c->minute = (int) (ms / 60000 % 60);
	c->second = (int) (ms / 1000 % 60);
	c->millisecond = (int) (ms % 1000);
	return FH_S3KEY_OK;
}

/* ---------- evaluation ---------- */

typedef struct OutBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;			/* bytes, the NUL included */
	bool		overflow;
} OutBuf;

static void
out_append(OutBuf *o, const char *s, size_t len)
{
	if (o->overflow || o->len + len + 1 > o->cap)
	{
		o->overflow = true;
		return;
	}
	memcpy(o->data + o->len, s, len);
	o->len += len;
	o->data[o->len] = '\0';
}

static void
out_puts(OutBuf *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/* v in decimal, zero-padded to width digits */
static void
out_number(OutBuf *o, long v, int width)
{
	char		num[32];

	snprintf(num, sizeof(num), "%0*ld", width, v);
	out_puts(o, num);
}

/* print one pattern field as java.time does, English names */
static void
out_field(OutBuf *o, char letter, int count, const CivilTime *c)
{
	switch (letter)
	{
		case 'y':
		case 'u':
			if (count == 2)
				out_number(o, c->year % 100, 2);
			else
				out_number(o, c->year, count);
			break;
		case 'M':
		case 'L':
			if (count <= 2)
				out_number(o, c->month, count);
			else if (count == 3)
				out_append(o, month_names[c->month - 1], 3);
			else if (count == 4)
				out_puts(o, month_names[c->month - 1]);
			else
				out_append(o, month_names[c->month - 1], 1);
			break;
		case 'd':
			out_number(o, c->day, count);
			break;
		case 'D':
			out_number(o, c->yday, count);
			break;
		case 'H':
			out_number(o, c->hour, count);
			break;
		case 'h':				/* clock hour of am/pm, 1-12 */
			out_number(o, c->hour % 12 == 0 ? 12 : c->hour % 12, count);
			break;
		case 'K':				/* hour of am/pm, 0-11 */
			out_number(o, c->hour % 12, count);
			break;
		case 'k':				/* clock hour of day, 1-24 */
			out_number(o, c->hour == 0 ? 24 : c->hour, count);
			break;
		case 'm':
			out_number(o, c->minute, count);
			break;
		case 's':
			out_number(o, c->second, count);
			break;
		case 'S':
			{
				/* the first count digits of the nine of the nanoseconds */
				long		nanos = c->millisecond * 1000000L;
				int			k;

				for (k = count; k < 9; k++)
					nanos /= 10;
				out_number(o, nanos, count);
			}
			break;
		case 'E':
			if (count <= 3)
				out_append(o, day_names[c->wday - 1], 3);
			else if (count == 4)
				out_puts(o, day_names[c->wday - 1]);
			else
				out_append(o, day_names[c->wday - 1], 1);
			break;
		case 'a':
			out_puts(o, c->hour < 12 ? "AM" : "PM");
			break;
	}
}

/* a caller's random string: 11 of [0-9A-Za-z_-], safe in any S3 key */
static bool
valid_random_string(const char *s)
{
	int			i;

	if (s == NULL)
		return false;
	for (i = 0; i < FH_S3KEY_RANDOM_LEN; i++)
	{
		char		c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			  (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
			return false;
	}
	return s[FH_S3KEY_RANDOM_LEN] == '\0';
}

/*
 * fh_s3key_is_error_output_type
 *		Whether type is one of Firehose's error output types (ref:258).
 */
bool
fh_s3key_is_error_output_type(const char *type)
{
	int			k;

	for (k = 0; type && error_output_types[k]; k++)
		if (strcmp(type, error_output_types[k]) == 0)
			return true;
	return false;
}

/*
 * fh_s3key_eval_prefix
 *		Evaluate the Prefix (error_output_type NULL) or the ErrorOutputPrefix
 *		(error_output_type "http-endpoint-failed", ...) of layout at time t.
 *
 * random_strings holds at least fh_s3key_nrandom() strings of 11 characters
 * of [0-9A-Za-z_-], used in order, one per !{firehose:random-string}.
 * Every timestamp expression evaluates t in its zone.  Writes the prefix
 * to out; returns FH_S3KEY_EINVAL with a message for a bad input, or when
 * the result exceeds 512 characters (which parsing rules out).
 */
FhS3KeyStatus
fh_s3key_eval_prefix(const FhS3KeyLayout *layout, FhS3KeyTime t,
					 const char *error_output_type,
					 const char *const *random_strings, int nrandom,
					 char out[FH_S3KEY_PREFIX_BUFSIZE],
					 char error[FH_S3KEY_ERROR_LEN])
{
	return fh_s3key_eval_prefix_keys(layout, t, error_output_type,
									 random_strings, nrandom, NULL, 0,
									 out, error);
}

/*
 * fh_s3key_eval_prefix_keys
 *		fh_s3key_eval_prefix with the values of the partition keys: values[k]
 *		is the value of the k-th !{partitionKeyFrom*:name} of the Prefix
 *		(fh_s3key_partition_key names it), nvalues at least
 *		fh_s3key_npartition_keys().  A value that may not go into a key
 *		(fh_s3key_check_key_value) is refused with a message naming it.
 */
FhS3KeyStatus
fh_s3key_eval_prefix_keys(const FhS3KeyLayout *layout, FhS3KeyTime t,
						  const char *error_output_type,
						  const char *const *random_strings, int nrandom,
						  const char *const *values, int nvalues,
						  char out[FH_S3KEY_PREFIX_BUFSIZE],
						  char error[FH_S3KEY_ERROR_LEN])
{
	int			next_key = 0;

	const Template *tp = error_output_type ? &layout->error : &layout->prefix;
	OutBuf		o = {out, 0, FH_S3KEY_PREFIX_BUFSIZE, false};
	CivilTime	c;
	FhS3KeyStatus st;
	int			next_random = 0;
	int			i;

	out[0] = '\0';
	if (error != NULL)
		error[0] = '\0';
	if (error_output_type && !fh_s3key_is_error_output_type(error_output_type))
		return fail(error, "unknown error output type \"%.*s\"",
					QUOTE_MAX, error_output_type);
	if (nrandom < tp->nrandom)
		return fail(error, "%d random strings are needed, %d were given",
					tp->nrandom, nrandom);
	if (nvalues < tp->nkeys)
		return fail(error, "%d partition key values are needed, %d were given",
					tp->nkeys, nvalues);
	for (i = 0; i < tp->nkeys; i++)
	{
		st = fh_s3key_check_key_value(values[i], error);
		if (st != FH_S3KEY_OK)
			return st;
	}
	for (i = 0; i < tp->nrandom; i++)
		if (!valid_random_string(random_strings[i]))
			return fail(error, "random string %d is not 11 characters of [0-9A-Za-z_-]",
						i + 1);
	st = civil_time(t, &c, error);
	if (st != FH_S3KEY_OK)
		return st;

	for (i = 0; i < tp->nitems; i++)
	{
		const Item *item = &tp->items[i];

		switch (item->kind)
		{
			case ITEM_LITERAL:
				out_append(&o, layout->pool + item->off, item->len);
				break;
			case ITEM_FIELD:
				out_field(&o, item->letter, item->count, &c);
				break;
			case ITEM_RANDOM:
				out_puts(&o, random_strings[next_random++]);
				break;
			case ITEM_ERROR_TYPE:
				out_puts(&o, error_output_type);
				break;
			case ITEM_PARTITION_KEY:
				out_puts(&o, values[next_key++]);
				break;
		}
	}
	if (o.overflow || utf16_units(o.data, o.len) > FH_S3KEY_MAX_EVAL_CHARS)
	{
		out[0] = '\0';
		return fail(error, "%s is longer than %d characters after evaluation",
					error_output_type ? "error_output_prefix" : "prefix",
					FH_S3KEY_MAX_EVAL_CHARS);
	}
	return FH_S3KEY_OK;
}

/* ---------- the object key ---------- */

/*
 * fh_s3key_uuid
 *		The 128 bits of id as a version 4 UUID, lower-case 8-4-4-4-12 hex
 *		as Firehose's keys show it (ref:241's example
 *		"a9fa96af-e4e4-409f-bac3-1f804714faaa"): the version and variant
 *		bits are set, the 122 others are id's.
 */
void
fh_s3key_uuid(const unsigned char id[16], char out[FH_S3KEY_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	int			i;
	int			n = 0;

	memcpy(b, id, 16);
	b[6] = (b[6] & 0x0F) | 0x40;
	b[8] = (b[8] & 0x3F) | 0x80;
	for (i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[n++] = '-';
		out[n++] = hex[b[i] >> 4];
		out[n++] = hex[b[i] & 0x0F];
	}
	out[n] = '\0';
}

/* SplitMix64's finalizer: a bijective mix of 64 bits */
static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/*
 * fh_s3key_random_string
 *		The index-th random string of a batch whose id is id: 11 characters
 *		shaped like the reference's example "046b6c7f-0b" (8 hex digits, a
 *		hyphen, 2 hex digits).  Always the same for the same id and index,
 *		so a retried batch evaluates its prefix to the same key; different
 *		indexes give unrelated strings.
 */
void
fh_s3key_random_string(const unsigned char id[16], int index,
					   char out[FH_S3KEY_RANDOM_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t	hi = 0;
	uint64_t	lo = 0;
	uint64_t	h;
	int			i;
	int			n = 0;

	for (i = 0; i < 8; i++)
	{
		hi = (hi << 8) | id[i];
		lo = (lo << 8) | id[i + 8];
	}
	h = mix64(hi ^ mix64(lo ^ mix64((uint64_t) index + UINT64_C(0x9E3779B97F4A7C15))));
	for (i = 0; i < 10; i++)
	{
		if (i == 8)
			out[n++] = '-';
		out[n++] = hex[(h >> (60 - 4 * i)) & 0x0F];
	}
	out[n] = '\0';
}

/*
 * fh_s3key_check_extension
 *		A FileExtension: "" or a dot and at least one of [0-9a-z!-_.*'()],
 *		at most 128 characters (ref:68; API pattern "^$|\.[0-9a-z!\-_.*'()]+").
 */
FhS3KeyStatus
fh_s3key_check_extension(const char *ext, char error[FH_S3KEY_ERROR_LEN])
{
	size_t		len = ext ? strlen(ext) : 0;
	size_t		i;
	char		q[QUOTE_MAX + 4];

	if (len == 0)
		return FH_S3KEY_OK;
	if (len > FH_S3KEY_MAX_EXTENSION)
		return fail(error, "file extension has %zu characters; at most %d are allowed",
					len, FH_S3KEY_MAX_EXTENSION);
	if (ext[0] != '.' || len < 2)
		return fail(error, "file extension \"%s\" must be a \".\" followed by at least one character",
					quote_text(q, ext, len));
	for (i = 1; i < len; i++)
	{
		char		c = ext[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			  (c != '\0' && strchr("!-_.*'()", c))))
			return fail(error, "file extension \"%s\" has a character other than 0-9 a-z ! - _ . * ' ( )",
						quote_text(q, ext, len));
	}
	return FH_S3KEY_OK;
}

/*
 * fh_s3key_object_key
 *		The object key <evaluated prefix><stream>-<version>-yyyy-MM-dd-HH-
 *		mm-ss-<uuid><extension> (ref:236), the time t in its zone like the
 *		prefix, the uuid from id (fh_s3key_uuid).
 *
 * stream is a Firehose stream name ([A-Za-z0-9_.-], 1 to 64; ref:37),
 * version at least 1, extension as fh_s3key_check_extension accepts (NULL:
 * none).  Fails when the key would exceed S3's 1024 bytes.
 */
FhS3KeyStatus
fh_s3key_object_key(const char *evaluated_prefix, const char *stream,
					int64_t version, FhS3KeyTime t,
					const unsigned char id[16], const char *extension,
					char out[FH_S3KEY_KEY_BUFSIZE],
					char error[FH_S3KEY_ERROR_LEN])
{
	OutBuf		o = {out, 0, FH_S3KEY_KEY_BUFSIZE, false};
	CivilTime	c;
	FhS3KeyStatus st;
	char		buf[64];
	char		uuid[FH_S3KEY_UUID_LEN + 1];
	size_t		plen = evaluated_prefix ? strlen(evaluated_prefix) : 0;
	size_t		slen = stream ? strlen(stream) : 0;
	size_t		i;
	size_t		total;
	char		q[QUOTE_MAX + 4];

	out[0] = '\0';
	if (error != NULL)
		error[0] = '\0';
	for (i = 0; i < plen;)
	{
		uint32_t	cp;
		int			n = fh_utf8_decode((const unsigned char *) evaluated_prefix + i,
									plen - i, &cp);

		if (n == 0)
			return fail(error, "object key prefix is not valid UTF-8 at byte %zu",
						i + 1);
		i += n;
	}
	if (slen == 0 || slen > MAX_STREAM_NAME ||
		strspn(stream, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != slen)
		return fail(error, "invalid stream name \"%s\" for an object key",
					stream ? quote_text(q, stream, slen) : "");
	if (version < 1)
		return fail(error, "stream version %lld is not 1 or more",
					(long long) version);
	st = fh_s3key_check_extension(extension, error);
	if (st != FH_S3KEY_OK)
		return st;
	st = civil_time(t, &c, error);
	if (st != FH_S3KEY_OK)
		return st;

	snprintf(buf, sizeof(buf), "-%lld-%04d-%02d-%02d-%02d-%02d-%02d-",
			 (long long) version, c.year, c.month, c.day, c.hour, c.minute,
			 c.second);
	fh_s3key_uuid(id, uuid);
	total = plen + slen + strlen(buf) + FH_S3KEY_UUID_LEN +
		(extension ? strlen(extension) : 0);
	if (total > FH_S3KEY_MAX_KEY_BYTES)
		return fail(error, "object key would be %zu bytes long; S3 allows at most %d",
					total, FH_S3KEY_MAX_KEY_BYTES);
	out_append(&o, evaluated_prefix ? evaluated_prefix : "", plen);
	out_append(&o, stream, slen);
	out_puts(&o, buf);
	out_puts(&o, uuid);
	if (extension)
		out_puts(&o, extension);
	return FH_S3KEY_OK;
}

/* ---------- time zones ---------- */

/* two decimal digits at s, or -1 */
static int
two_digits(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/*
 * fh_s3key_parse_zone
 *		A stream's time zone.  NULL, "" and "UTC" (Firehose's default,
 *		ref:69) give offset 0; a fixed offset "+09:00", "-0530", "+09",
 *		optionally after "UTC" or "GMT" ("UTC+09:00"), up to 18 hours as
 *		java.time's ZoneOffset, gives its offset in seconds: FH_S3KEY_OK.
 *
 * A name that fits CustomTimeZone's pattern [a-zA-Z/_]+ of at most 50
 * characters (ref:69, ref:239: an IANA name such as Asia/Tokyo) gives
 * FH_S3KEY_ZONE_NAMED: the caller looks it up in its time zone database
 * and works out the offset at each instant (daylight saving time).
 * Anything else is FH_S3KEY_EINVAL with a message.
 */
FhS3KeyStatus
fh_s3key_parse_zone(const char *name, int32_t *utc_offset_s,
					char error[FH_S3KEY_ERROR_LEN])
{
	const char *s = name;
	size_t		len = name ? strlen(name) : 0;
	char		q[QUOTE_MAX + 4];
	int			sign;
	int			hh;
	int			mm = 0;

	*utc_offset_s = 0;
	if (error != NULL)
		error[0] = '\0';
	if (len == 0 || strcmp(name, "UTC") == 0)
		return FH_S3KEY_OK;
	if (strncmp(s, "UTC", 3) == 0 || strncmp(s, "GMT", 3) == 0)
	{
		if (s[3] == '+' || s[3] == '-')
			s += 3;
	}
	if (s[0] == '+' || s[0] == '-')
	{
		sign = s[0] == '-' ? -1 : 1;
		hh = two_digits(s + 1);
		if (hh >= 0 && s[3] == '\0')
			mm = 0;
		else if (hh >= 0 && s[3] == ':' && (mm = two_digits(s + 4)) >= 0 &&
				 s[6] == '\0')
			;
		else if (hh >= 0 && (mm = two_digits(s + 3)) >= 0 && s[5] == '\0')
			;
		else
			return fail(error, "time zone offset \"%s\" is not of the form +HH:MM, +HHMM or +HH",
						quote_text(q, name, len));
		if (mm > 59 || hh * 3600 + mm * 60 > MAX_OFFSET_S)
			return fail(error, "time zone offset \"%s\" is out of range (at most 18 hours)",
						quote_text(q, name, len));
		*utc_offset_s = sign * (hh * 3600 + mm * 60);
		return FH_S3KEY_OK;
	}
	if (len <= FH_S3KEY_MAX_ZONE_NAME &&
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/_") == len)
		return FH_S3KEY_ZONE_NAMED;
	return fail(error, "invalid time zone \"%s\"; use UTC, a fixed offset such as +09:00, or a time zone name such as Asia/Tokyo",
				quote_text(q, name, len));
}
