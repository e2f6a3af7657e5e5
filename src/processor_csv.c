/*-------------------------------------------------------------------------
 *
 * processor_csv.c
 *	  Processor "json_to_csv" (Firehose's JSON to CSV blueprint): each
 *	  record, a JSON object, becomes one CSV line of the values at the
 *	  processor's columns, JSON paths such as "customer.name".
 *
 * Records are read with PostgreSQL's jsonb (jsonb_in), and the columns
 * looked up in the binary container (a binary search per key), so a
 * record costs one parse however many columns there are.  Fields are
 * quoted as RFC 4180 says: a field with the delimiter, the quote
 * character, CR or LF is put in quotes and its quotes doubled; so is a
 * text equal to the null text, so that readers that tell them apart
 * (COPY ... CSV) see a text, not a null.  A line has no line end of its
 * own: the destination's delimiter (S3's "\n") ends it.  The header
 * line, when asked for, starts each part's output (processor.c puts it
 * before the part's first delivered record) and ends in "\n".
 *
 * A record that is not a JSON object (not JSON, not valid in the database
 * encoding, an array, a scalar) fails alone with
 * Processor.ProcessingFailed.  This file calls only verdict.c and util.c.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

/* a column: the keys (or array indexes) of its path */
typedef struct CsvColumn
{
	char	   *path;			/* as given: the header's name */
	int			nkeys;
	char	  **keys;
	int		   *lens;
} CsvColumn;

typedef struct CsvConfig
{
	int			ncolumns;
	CsvColumn  *columns;
	char		delimiter;
	char		quote;
	char	   *null;
	int			null_len;
	bool		header;
} CsvConfig;

static const char *const csv_keys[] = {
	"type", "columns", "delimiter", "quote", "null", "header", NULL
};

/* the string value of key of p, or NULL when it is not there */
static JsonbValue *
get_key(Jsonb *p, const char *key)
{
	return getKeyJsonValueFromContainer(&p->root, key, strlen(key), NULL);
}

/*
 * The one character of option key (its default def when not given) in *c,
 * or why it is not valid.
 */
static const char *
one_character(Jsonb *p, const char *key, char def, char *c)
{
	JsonbValue *v = get_key(p, key);

	*c = def;
	if (v == NULL)
		return NULL;
	if (v->type != jbvString || v->val.string.len != 1 ||
		IS_HIGHBIT_SET(v->val.string.val[0]) ||
		v->val.string.val[0] == '\r' || v->val.string.val[0] == '\n' ||
		v->val.string.val[0] == '\0')
		return psprintf("\"%s\" must be one ASCII character other than CR and LF.", key);
	*c = v->val.string.val[0];
	return NULL;
}

/* split path at its dots; false when a key is empty */
static bool
split_path(const char *path, CsvColumn *col)
{
	int			n = 1;
	const char *start = path;

	for (const char *s = path; *s; s++)
		n += *s == '.';
	col->path = pstrdup(path);
	col->keys = palloc(sizeof(char *) * n);
	col->lens = palloc(sizeof(int) * n);
	col->nkeys = 0;
	for (const char *s = path;; s++)
	{
		if (*s == '.' || *s == '\0')
		{
			if (s == start)
				return false;
			col->keys[col->nkeys] = pnstrdup(start, s - start);
			col->lens[col->nkeys++] = s - start;
			start = s + 1;
		}
		if (*s == '\0')
			return true;
	}
}

/*
 * Read and check processor p into c (columns, delimiter, quote, null,
 * header); why it is not valid, or NULL.
 */
static const char *
csv_read(Jsonb *p, CsvConfig *c)
{
	JsonbValue *columns = get_key(p, "columns");
	JsonbValue *v;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	const char *why;

	if (columns == NULL || columns->type != jbvBinary ||
		!JsonContainerIsArray(columns->val.binary.data) ||
		JsonContainerSize(columns->val.binary.data) == 0)
		return "\"columns\" must be a non-empty array of JSON paths such as \"customer.name\".";
	c->columns = palloc0(sizeof(CsvColumn) * JsonContainerSize(columns->val.binary.data));
	it = JsonbIteratorInit(columns->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString ||
			!split_path(pnstrdup(e.val.string.val, e.val.string.len),
						&c->columns[c->ncolumns]))
			return psprintf("column %d must be a JSON path: keys (or array indexes) joined by dots, none empty, such as \"customer.name\".",
							c->ncolumns + 1);
		c->ncolumns++;
	}
	if ((why = one_character(p, "delimiter", ',', &c->delimiter)) ||
		(why = one_character(p, "quote", '"', &c->quote)))
		return why;
	if (c->delimiter == c->quote)
		return "\"delimiter\" and \"quote\" must differ.";
	c->null = "";
	if ((v = get_key(p, "null")) != NULL)
	{
		if (v->type != jbvString)
			return "\"null\" must be a string: the text of a missing or null field.";
		c->null = pnstrdup(v->val.string.val, v->val.string.len);
	}
	c->null_len = strlen(c->null);
	if (c->null_len != (v ? v->val.string.len : 0) ||
		strchr(c->null, c->delimiter) || strchr(c->null, c->quote) ||
		strpbrk(c->null, "\r\n"))
		return "\"null\" must not hold the delimiter, the quote character, CR, LF or NUL.";
	c->header = false;
	if ((v = get_key(p, "header")) != NULL)
	{
		if (v->type != jbvBool)
			return "\"header\" must be true or false.";
		c->header = v->val.boolean;
	}
	return NULL;
}

/* normalize a processor of type "json_to_csv"; see FhProcessorKind */
static const char *
csv_normalize(Jsonb *p, StringInfo out)
{
	CsvConfig	c = {0};
	const char *why = csv_read(p, &c);
	char		one[2] = {0, 0};

	if (why)
		return why;
	appendStringInfoString(out, "{\"type\": \"json_to_csv\", \"columns\": [");
	for (int i = 0; i < c.ncolumns; i++)
	{
		if (i > 0)
			appendStringInfoString(out, ", ");
		escape_json(out, c.columns[i].path);
	}
	appendStringInfoString(out, "], \"delimiter\": ");
	one[0] = c.delimiter;
	escape_json(out, one);
	appendStringInfoString(out, ", \"quote\": ");
	one[0] = c.quote;
	escape_json(out, one);
	appendStringInfoString(out, ", \"null\": ");
	escape_json(out, c.null);
	appendStringInfo(out, ", \"header\": %s}", c.header ? "true" : "false");
	return NULL;
}

static void *
csv_configure(Jsonb *p)
{
	CsvConfig  *c = palloc0(sizeof(CsvConfig));
	const char *why = csv_read(p, c);

	/* normalized at create/alter time: cannot happen */
	if (why)
		elog(ERROR, "invalid json_to_csv processor: %s", why);
	return c;
}

/*
 * Append one field, s of len bytes, quoted when RFC 4180 says so; text:
 * it is a JSON string (quoted too when it equals the null text).
 */
static void
append_field(const CsvConfig *c, StringInfo out, const char *s, int len, bool text)
{
	bool		quote = text && len == c->null_len && memcmp(s, c->null, len) == 0;

	for (int i = 0; i < len && !quote; i++)
		quote = s[i] == c->delimiter || s[i] == c->quote || s[i] == '\r' || s[i] == '\n';
	if (!quote)
	{
		appendBinaryStringInfo(out, s, len);
		return;
	}
	appendStringInfoChar(out, c->quote);
	for (int i = 0; i < len; i++)
	{
		if (s[i] == c->quote)
			appendStringInfoChar(out, c->quote);
		appendStringInfoChar(out, s[i]);
	}
	appendStringInfoChar(out, c->quote);
}

/* the value at column col of the object root, or NULL when it is missing */
static JsonbValue *
column_value(const CsvColumn *col, JsonbContainer *root, JsonbValue *buf)
{
	JsonbContainer *cont = root;
	JsonbValue *v = NULL;

	for (int k = 0; k < col->nkeys; k++)
	{
		if (JsonContainerIsObject(cont))
			v = getKeyJsonValueFromContainer(cont, col->keys[k], col->lens[k], buf);
		else
		{
			/* an array: the key is an index, or there is no such value */
			char	   *end;
			long		idx = strtol(col->keys[k], &end, 10);

			if (*end != '\0' || !isdigit((unsigned char) col->keys[k][0]) ||
				idx >= JsonContainerSize(cont))
				return NULL;
			v = getIthJsonbValueFromContainer(cont, (uint32) idx);
		}
		if (v == NULL)
			return NULL;
		if (k < col->nkeys - 1)
		{
			if (v->type != jbvBinary)
				return NULL;
			cont = v->val.binary.data;
		}
	}
	return v;
}

/*
 * The CSV line of the record data (a C string of len bytes) in line; why it
 * is not a JSON object, or NULL.  In a context the caller resets.
 */
static char *
csv_line(const CsvConfig *c, const char *data, int len, StringInfo line)
{
	Jsonb	   *jb;
	char	   *why;

	if (memchr(data, '\0', len))
		return "The record is not a JSON object: it has a NUL byte.";
	if (!pg_verifymbstr(data, len, true))
		return psprintf("The record is not a JSON object: it is not valid %s.",
						GetDatabaseEncodingName());

	jb = fh_jsonb_parse(data, &why);
	if (jb == NULL)
		return psprintf("The record is not a JSON object: %s", why);
	if (!JB_ROOT_IS_OBJECT(jb))
		return psprintf("The record is not a JSON object: it is a JSON %s.",
						JB_ROOT_IS_SCALAR(jb) ? "scalar" : "array");

	for (int k = 0; k < c->ncolumns; k++)
	{
		JsonbValue	buf;
		JsonbValue *v = column_value(&c->columns[k], &jb->root, &buf);

		if (k > 0)
			appendStringInfoChar(line, c->delimiter);
		if (v == NULL || v->type == jbvNull)
			appendBinaryStringInfo(line, c->null, c->null_len);
		else if (v->type == jbvString)
			append_field(c, line, v->val.string.val, v->val.string.len, true);
		else if (v->type == jbvBool)
			appendStringInfoString(line, v->val.boolean ? "true" : "false");
		else if (v->type == jbvNumeric)
		{
			char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
																NumericGetDatum(v->val.numeric)));

			appendStringInfoString(line, s);
		}
		else
		{
			/* an object or an array: its JSON text */
			char	   *s = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);

			append_field(c, line, s, strlen(s), false);
		}
	}
	return NULL;
}

/* run a processor of type "json_to_csv"; see FhProcessorKind */
static void
csv_run(void *config, Oid owner, const FhRecord *records, int n, FhProcessed *out)
{
	CsvConfig  *c = config;
	MemoryContext result_cxt = CurrentMemoryContext;
	MemoryContext scratch = AllocSetContextCreate(result_cxt, "firehose json_to_csv",
												  ALLOCSET_DEFAULT_SIZES);
	StringInfoData text;
	StringInfoData line;

	initStringInfo(&text);
	initStringInfo(&line);
	for (int i = 0; i < n; i++)
	{
		char	   *why;

		if (out[i].result != FH_PROC_OK)
			continue;
		CHECK_FOR_INTERRUPTS();
		/* jsonb_in wants a C string */
		resetStringInfo(&text);
		appendBinaryStringInfo(&text, VARDATA_ANY(out[i].data),
							   VARSIZE_ANY_EXHDR(out[i].data));
		resetStringInfo(&line);
		MemoryContextSwitchTo(scratch);
		why = csv_line(c, text.data, text.len, &line);
		MemoryContextSwitchTo(result_cxt);
		if (why)
			fh_processed_fail(&out[i], "Processor.ProcessingFailed", pstrdup(why));
		else
		{
			bytea	   *d = palloc(VARHDRSZ + line.len);

			SET_VARSIZE(d, VARHDRSZ + line.len);
			memcpy(VARDATA(d), line.data, line.len);
			out[i].data = d;
		}
		MemoryContextReset(scratch);
	}
	pfree(text.data);
	pfree(line.data);
	MemoryContextDelete(scratch);
}

/* the header line: the columns as given, and a line feed */
static void
csv_header(void *config, StringInfo out)
{
	CsvConfig  *c = config;

	if (!c->header)
		return;
	for (int k = 0; k < c->ncolumns; k++)
	{
		if (k > 0)
			appendStringInfoChar(out, c->delimiter);
		append_field(c, out, c->columns[k].path, strlen(c->columns[k].path), false);
	}
	appendStringInfoChar(out, '\n');
}

const FhProcessorKind fh_processor_json_to_csv = {
	.type = "json_to_csv",
	.keys = csv_keys,
	.normalize = csv_normalize,
	.configure = csv_configure,
	.run = csv_run,
	.header = csv_header,
};
