/*-------------------------------------------------------------------------
 *
 * answers.c
 *	  Reading what the destinations answer (see answers.h): the same source
 *	  in the server and in frontend code (the unit test, the fuzz target).
 *
 * JSON bodies go through PostgreSQL's JSON parser (common/jsonapi.c, in
 * the server and in libpgcommon) with semantic actions that keep only
 * the members a verdict needs.  Before it, a scan of the bytes refuses
 * nesting deeper than FH_ANSWER_MAX_DEPTH: the parser recurses once per
 * level, and in frontend code nothing checks the stack (a megabyte of "["
 * crashes it; the server would raise an ERROR).  A body the parser
 * refuses gives an empty answer, whatever the actions saw before the
 * error.
 *
 * Memory: the parser's own (palloc: the current memory context in the
 * server, malloc in frontend code), and each copied text bounded; the
 * lexers are freed here, so frontend code leaks nothing.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <errno.h>
#include <limits.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "answers.h"

/* ---------- texts ---------- */

/*
 * Copy s (len bytes) into buf (size bytes, at least 1), NUL-terminated,
 * cut when too long before the UTF-8 character that would not fit whole
 * (looking back at most 3 continuation bytes: invalid text is cut where
 * it is).  Returns the bytes copied.
 */
static size_t
copy_text(char *buf, size_t size, const char *s, size_t len)
{
	size_t		n = len;

	if (n > size - 1)
	{
		n = size - 1;
		for (int k = 0; k < 3 && n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80; k++)
			n--;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return n;
}

/* a palloc'd copy of the C string s, cut like copy_text to the text limit */
static char *
dup_text(const char *s)
{
	size_t		len = strlen(s);
	char	   *buf = palloc(Min(len, FH_ANSWER_TEXT_MAX) + 1);

	copy_text(buf, FH_ANSWER_TEXT_MAX + 1, s, len);
	return buf;
}

/*
 * A JSON number token as an integer in [min, max]; false for fractions,
 * exponents and numbers out of range (JSON has no leading '+' or spaces,
 * so strtoll reads every integer token whole).
 */
static bool
json_integer(const char *token, long long min, long long max, long long *out)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(token, &end, 10);
	if (errno != 0 || end == token || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---------- JSON ---------- */

/*
 * Is the nesting of arrays and objects in body at most max deep?  Counts
 * '[' and '{' outside strings on the bytes: a guard, not a parser.  Up to
 * the first error the parser meets (where it stops), a string starts and
 * ends where this scan sees it, so the parser never goes deeper than
 * this count; an unmatched closing bracket is such an error.
 */
static bool
nesting_within(const char *body, size_t len, int max)
{
	int			depth = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = body[i];

		if (in_string)
		{
			if (c == '\\')
				i++;			/* the escaped byte, whatever it is */
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if ((c == '[' || c == '{') && ++depth > max)
			return false;
		else if ((c == ']' || c == '}') && --depth < 0)
			return false;
	}
	return true;
}

/* one run of the parser over body (len bytes, at most INT_MAX) */
static bool
parse_with(const char *body, size_t len, JsonSemAction *sem)
{
	JsonLexContext *lex;
	bool		ok;

	/* with escapes: the actions get texts decoded ("\u00e9" as UTF-8) */
	lex = makeJsonLexContextCstringLen((char *) body, (int) len, PG_UTF8, true);
	ok = pg_parse_json(lex, sem) == JSON_SUCCESS;
	pfree(lex->strval->data);
	pfree(lex->strval);
	pfree(lex);
	return ok;
}

/*
 * Parse body with sem; false when it is not one JSON value of at most
 * FH_ANSWER_MAX_DEPTH levels (the actions may have been called: the
 * caller forgets what they kept).
 */
static bool
parse_json(const char *body, size_t len, JsonSemAction *sem)
{
	if (len == 0 || len > INT_MAX || !nesting_within(body, len, FH_ANSWER_MAX_DEPTH))
		return false;
#if defined(FRONTEND) && !defined(FH_ANSWERS_PARSE_ONCE)

	/*
	 * PostgreSQL 15's parser does not free a key or scalar it copied for the
	 * actions when the input breaks right after it (a missing ':', a bad
	 * token).  In the server the memory context takes it back; frontend
	 * code (the fuzz targets, which check leaks) first checks the body
	 * without actions, which copy nothing.  The answers are the same:
	 * whether a body parses does not depend on the actions.  The unit test
	 * defines FH_ANSWERS_PARSE_ONCE, to run the server's way.
	 */
	if (!parse_with(body, len, &nullSemAction))
		return false;
#endif
	return parse_with(body, len, sem);
}

/*
 * What the scans below share: the depth of containers open (1 inside the
 * top-level object), which member of the top-level object is being read,
 * and whether the top-level value is an object.
 */
typedef struct JsonScan
{
	int			depth;
	int			field;			/* the scan's own enum; 0: other */
	bool		object;
} JsonScan;

/* the actions every scan shares: state is a scan that starts with a JsonScan */
static void
scan_object_start(void *state)
{
	JsonScan   *s = state;

	if (++s->depth == 1)
		s->object = true;
}

static void
scan_array_start(void *state)
{
	((JsonScan *) state)->depth++;
}

static void
scan_end(void *state)
{
	((JsonScan *) state)->depth--;
}

/* which of names[] (NULL terminated) fname is: its index + 1, or 0 */
static int
field_of(const char *fname, const char *const names[])
{
	for (int i = 0; names[i]; i++)
		if (strcmp(fname, names[i]) == 0)
			return i + 1;
	return 0;
}

/* ---------- the Firehose HTTP endpoint's answer ---------- */

enum
{
	HTTP_REQUEST_ID = 1,
	HTTP_TIMESTAMP,
	HTTP_ERROR_MESSAGE
};
static const char *const http_fields[] = {"requestId", "timestamp", "errorMessage", NULL};

typedef struct HttpScan
{
	JsonScan	s;
	FhHttpAnswer *out;
} HttpScan;

static void
http_field_start(void *state, char *fname, bool isnull)
{
	HttpScan   *h = state;

	if (h->s.depth == 1)
	{
		h->s.field = field_of(fname, http_fields);
		/* the last of duplicate keys counts: forget an earlier one */
		if (h->s.field == HTTP_REQUEST_ID)
		{
			h->out->has_request_id = false;
			h->out->request_id_len = 0;
			h->out->request_id[0] = '\0';
		}
		else if (h->s.field == HTTP_TIMESTAMP)
			h->out->has_timestamp = false;
		else if (h->s.field == HTTP_ERROR_MESSAGE)
		{
			h->out->has_error_message = false;
			h->out->error_message[0] = '\0';
		}
	}
	pfree(fname);
}

static void
http_scalar(void *state, char *token, JsonTokenType type)
{
	HttpScan   *h = state;
	FhHttpAnswer *a = h->out;

	if (h->s.depth == 1 && type == JSON_TOKEN_STRING && h->s.field == HTTP_REQUEST_ID)
	{
		a->has_request_id = true;
		a->request_id_len = strlen(token);
		copy_text(a->request_id, sizeof(a->request_id), token, a->request_id_len);
	}
	else if (h->s.depth == 1 && h->s.field == HTTP_TIMESTAMP)
		a->has_timestamp = type == JSON_TOKEN_NUMBER;
	else if (h->s.depth == 1 && type == JSON_TOKEN_STRING && h->s.field == HTTP_ERROR_MESSAGE)
	{
		a->has_error_message = true;
		copy_text(a->error_message, sizeof(a->error_message), token, strlen(token));
	}
	pfree(token);
}

void
fh_http_answer(const char *body, size_t len, FhHttpAnswer *out)
{
	HttpScan	h;
	JsonSemAction sem = {0};

	memset(out, 0, sizeof(*out));
	memset(&h, 0, sizeof(h));
	h.out = out;
	sem.semstate = &h;
	sem.object_start = scan_object_start;
	sem.object_end = scan_end;
	sem.array_start = scan_array_start;
	sem.array_end = scan_end;
	sem.object_field_start = http_field_start;
	sem.scalar = http_scalar;
	out->json = parse_json(body, len, &sem);
	out->object = out->json && h.s.object;
	if (!out->json)
		memset(out, 0, sizeof(*out));
}

bool
fh_http_answer_matches(const FhHttpAnswer *a, const char *request_id)
{
	size_t		len = strlen(request_id);

	return a->object && a->has_request_id && a->request_id_len == len &&
		len <= FH_ANSWER_ID_MAX && memcmp(a->request_id, request_id, len) == 0;
}

/* ---------- Splunk HEC's answers ---------- */

enum
{
	HEC_CODE = 1,
	HEC_TEXT,
	HEC_ACK_ID,
	HEC_ACKS
};
static const char *const hec_fields[] = {"code", "text", "ackId", "acks", NULL};

typedef struct HecScan
{
	JsonScan	s;
	FhHecAnswer *out;
	bool		in_acks;		/* directly inside the top-level "acks" object */
	bool		ack_key;		/* its member being read is the wanted ack */
	char		want[24];		/* the wanted ackId as a key */
} HecScan;

static void
hec_object_start(void *state)
{
	HecScan    *h = state;

	scan_object_start(&h->s);
	if (h->s.depth == 2 && h->s.field == HEC_ACKS)
	{
		h->in_acks = true;
		h->ack_key = false;
	}
}

static void
hec_object_end(void *state)
{
	HecScan    *h = state;

	if (h->s.depth == 2)
		h->in_acks = false;
	h->s.depth--;
}

static void
hec_field_start(void *state, char *fname, bool isnull)
{
	HecScan    *h = state;
	FhHecAnswer *a = h->out;

	if (h->s.depth == 1)
	{
		h->s.field = field_of(fname, hec_fields);
		/* the last of duplicate keys counts: forget an earlier one */
		if (h->s.field == HEC_CODE)
			a->code = -1;
		else if (h->s.field == HEC_TEXT)
		{
			a->has_text = false;
			a->text[0] = '\0';
		}
		else if (h->s.field == HEC_ACK_ID)
		{
			a->has_ack_id = false;
			a->ack_id = 0;
		}
		else if (h->s.field == HEC_ACKS)
			a->acked = false;
	}
	else if (h->s.depth == 2 && h->in_acks)
	{
		h->ack_key = strcmp(fname, h->want) == 0;
		if (h->ack_key)
			a->acked = false;
	}
	pfree(fname);
}

static void
hec_scalar(void *state, char *token, JsonTokenType type)
{
	HecScan    *h = state;
	FhHecAnswer *a = h->out;
	long long	v;

	if (h->s.depth == 1)
	{
		if (h->s.field == HEC_CODE && type == JSON_TOKEN_NUMBER &&
			json_integer(token, INT_MIN, INT_MAX, &v))
			a->code = (int) v;
		else if (h->s.field == HEC_TEXT && type == JSON_TOKEN_STRING)
		{
			a->has_text = true;
			copy_text(a->text, sizeof(a->text), token, strlen(token));
		}
		else if (h->s.field == HEC_ACK_ID && type == JSON_TOKEN_NUMBER &&
				 json_integer(token, INT64_MIN, INT64_MAX, &v))
		{
			a->has_ack_id = true;
			a->ack_id = v;
		}
	}
	else if (h->s.depth == 2 && h->in_acks && h->ack_key)
		a->acked = type == JSON_TOKEN_TRUE;
	pfree(token);
}

void
fh_hec_answer(const char *body, size_t len, int64_t want_ack, FhHecAnswer *out)
{
	HecScan		h;
	JsonSemAction sem = {0};

	memset(out, 0, sizeof(*out));
	out->code = -1;
	memset(&h, 0, sizeof(h));
	h.out = out;
	snprintf(h.want, sizeof(h.want), "%lld", (long long) want_ack);
	sem.semstate = &h;
	sem.object_start = hec_object_start;
	sem.object_end = hec_object_end;
	sem.array_start = scan_array_start;
	sem.array_end = scan_end;
	sem.object_field_start = hec_field_start;
	sem.scalar = hec_scalar;
	out->object = parse_json(body, len, &sem) && h.s.object;
	if (!out->object)
	{
		/* not an answer: nothing of it counts */
		memset(out, 0, sizeof(*out));
		out->code = -1;
	}
}

/* ---------- OpenSearch's _bulk answer ---------- */

enum
{
	BULK_ERRORS = 1,
	BULK_ITEMS
};
static const char *const bulk_fields[] = {"errors", "items", NULL};

/* the members of an item's result, and of its error object */
enum
{
	ITEM_STATUS = 1,
	ITEM_ERROR
};
static const char *const item_fields[] = {"status", "error", NULL};
enum
{
	ERROR_TYPE = 1,
	ERROR_REASON
};
static const char *const error_fields[] = {"type", "reason", NULL};

/*
 * Depths: 1 the answer, 2 the items array, 3 an item {"<action>": ..}, 4
 * its result {"status": .., "error": ..}, 5 the error object.
 */
typedef struct BulkScan
{
	JsonScan	s;
	FhBulkAnswer *out;
	int			result_field;	/* the member of an item's result being read */
	int			error_field;	/* the member of an item's error being read */
	bool		in_items;		/* inside the top-level "items" array */
} BulkScan;

static FhBulkItem *
bulk_current(BulkScan *b)
{
	FhBulkAnswer *a = b->out;

	return (b->in_items && a->items >= 1 && a->items <= a->max_items) ?
		&a->item[a->items - 1] : NULL;
}

/* *field = a bounded copy of token (a duplicate key replaces it) */
static void
set_text(char **field, const char *token)
{
	if (*field)
		pfree(*field);
	*field = dup_text(token);
}

static void
clear_item(FhBulkItem *it)
{
	if (it->type)
		pfree(it->type);
	if (it->reason)
		pfree(it->reason);
	memset(it, 0, sizeof(*it));
}

static void
bulk_array_start(void *state)
{
	BulkScan   *b = state;

	if (++b->s.depth == 2 && b->s.field == BULK_ITEMS)
		b->in_items = b->out->items_seen = true;
}

static void
bulk_array_end(void *state)
{
	BulkScan   *b = state;

	if (b->s.depth == 2)
		b->in_items = false;
	b->s.depth--;
}

static void
bulk_field_start(void *state, char *fname, bool isnull)
{
	BulkScan   *b = state;

	if (b->s.depth == 1)
		b->s.field = field_of(fname, bulk_fields);
	else if (b->s.depth == 4 && b->in_items)
		b->result_field = field_of(fname, item_fields);
	else if (b->s.depth == 5 && b->in_items && b->result_field == ITEM_ERROR)
		b->error_field = field_of(fname, error_fields);
	pfree(fname);
}

static void
bulk_element_start(void *state, bool isnull)
{
	BulkScan   *b = state;
	FhBulkItem *it;

	if (b->s.depth == 2 && b->in_items)
	{
		b->out->items++;
		if ((it = bulk_current(b)) != NULL)
			it->status = -1;
		b->result_field = b->error_field = 0;
	}
}

static void
bulk_scalar(void *state, char *token, JsonTokenType type)
{
	BulkScan   *b = state;
	FhBulkItem *it = bulk_current(b);
	long long	v;

	if (b->s.depth == 1 && b->s.field == BULK_ERRORS)
		b->out->errors = type == JSON_TOKEN_FALSE ? 0 : 1;
	else if (it && b->s.depth == 4 && b->result_field == ITEM_STATUS)
		it->status = (type == JSON_TOKEN_NUMBER &&
					  json_integer(token, 0, INT_MAX, &v)) ? (long) v : -1;
	else if (it && b->s.depth == 4 && b->result_field == ITEM_ERROR &&
			 type == JSON_TOKEN_STRING)
		set_text(&it->reason, token);	/* old Elasticsearch: a string */
	else if (it && b->s.depth == 5 && b->result_field == ITEM_ERROR &&
			 b->error_field != 0)
		set_text(b->error_field == ERROR_TYPE ? &it->type : &it->reason, token);
	/* the parser's copy of a token: freed at once, answers hold many */
	pfree(token);
}

bool
fh_bulk_answer(const char *body, size_t len, int max_items, FhBulkAnswer *out)
{
	BulkScan	b;
	JsonSemAction sem = {0};

	memset(out, 0, sizeof(*out));
	out->errors = -1;
	out->max_items = Max(max_items, 0);
	out->item = palloc0(sizeof(FhBulkItem) * Max(max_items, 1));
	memset(&b, 0, sizeof(b));
	b.out = out;
	sem.semstate = &b;
	sem.object_start = scan_object_start;
	sem.object_end = scan_end;
	sem.array_start = bulk_array_start;
	sem.array_end = bulk_array_end;
	sem.object_field_start = bulk_field_start;
	sem.array_element_start = bulk_element_start;
	sem.scalar = bulk_scalar;
	out->json = parse_json(body, len, &sem) && b.s.object;
	if (!out->json)
	{
		/* not an answer: nothing of it counts */
		for (int i = 0; i < out->max_items; i++)
			clear_item(&out->item[i]);
		out->errors = -1;
		out->items_seen = false;
		out->items = 0;
	}
	return out->json;
}

void
fh_bulk_answer_free(FhBulkAnswer *a)
{
	if (a->item == NULL)
		return;
	for (int i = 0; i < a->max_items; i++)
		clear_item(&a->item[i]);
	pfree(a->item);
	a->item = NULL;
}

/* ---------- a Lambda transformation's answer ---------- */

enum
{
	LAMBDA_RECORDS = 1
};
static const char *const lambda_fields[] = {"records", NULL};

enum
{
	ITEM_RECORD_ID = 1,
	ITEM_RESULT,
	ITEM_DATA,
	ITEM_METADATA
};
static const char *const lambda_item_fields[] = {"recordId", "result", "data",
"metadata", NULL};

/*
 * Depths: 1 the answer, 2 the records array, 3 a record, 4 its metadata, 5
 * the metadata's partitionKeys.
 */
typedef struct LambdaScan
{
	JsonScan	s;
	FhLambdaAnswer *out;
	bool		in_records;		/* inside the top-level "records" array */
	int			item_field;		/* the member of a record being read */
	bool		in_keys;		/* the member of metadata being read is
								 * partitionKeys */
	char	   *key;			/* the partition key being read */
} LambdaScan;

static FhLambdaItem *
lambda_current(LambdaScan *l)
{
	FhLambdaAnswer *a = l->out;

	return (l->in_records && a->items >= 1 && a->items <= a->max_items) ?
		&a->item[a->items - 1] : NULL;
}

static void
clear_lambda_item(FhLambdaItem *it)
{
	if (it->record_id)
		pfree(it->record_id);
	if (it->result)
		pfree(it->result);
	if (it->data)
		pfree(it->data);
	for (int k = 0; k < it->nkeys; k++)
	{
		pfree(it->keys[k]);
		pfree(it->values[k]);
	}
	memset(it, 0, sizeof(*it));
}

/* a container starts at the depth it has after ++ */
static void
lambda_container_start(LambdaScan *l, bool object)
{
	FhLambdaItem *it;

	l->s.depth++;
	if (l->s.depth == 1 && object)
		l->s.object = true;
	else if (l->s.depth == 2 && !object && l->s.field == LAMBDA_RECORDS)
		l->in_records = l->out->records_seen = true;
	else if ((it = lambda_current(l)) != NULL)
	{
		if (l->s.depth == 3)
			it->object = object;
		else if (l->s.depth == 4 && l->item_field == ITEM_METADATA && !object)
			it->bad_metadata = true;
		else if (l->s.depth == 5 && l->in_keys && !object)
			it->bad_metadata = true;
		else if (l->s.depth == 6 && l->in_keys)
			it->bad_metadata = true;	/* a key's value is a container */
	}
}

static void
lambda_object_start(void *state)
{
	lambda_container_start(state, true);
}

static void
lambda_array_start(void *state)
{
	lambda_container_start(state, false);
}

static void
lambda_end(void *state)
{
	LambdaScan *l = state;

	if (l->s.depth == 2)
		l->in_records = false;
	l->s.depth--;
}

static void
lambda_element_start(void *state, bool isnull)
{
	LambdaScan *l = state;

	if (l->s.depth == 2 && l->in_records)
	{
		l->out->items++;
		l->item_field = 0;
		l->in_keys = false;
	}
}

static void
lambda_field_start(void *state, char *fname, bool isnull)
{
	LambdaScan *l = state;
	FhLambdaItem *it = lambda_current(l);

	if (l->s.depth == 1)
		l->s.field = field_of(fname, lambda_fields);
	else if (it && l->s.depth == 3)
	{
		l->item_field = field_of(fname, lambda_item_fields);
		l->in_keys = false;
	}
	else if (it && l->s.depth == 4 && l->item_field == ITEM_METADATA)
		l->in_keys = strcmp(fname, "partitionKeys") == 0;
	else if (it && l->s.depth == 5 && l->in_keys)
	{
		/* kept for its value (scalar below) */
		if (l->key)
			pfree(l->key);
		l->key = dup_text(fname);
	}
	pfree(fname);
}

static void
lambda_scalar(void *state, char *token, JsonTokenType type)
{
	LambdaScan *l = state;
	FhLambdaItem *it = lambda_current(l);
	bool		kept = false;

	if (it && l->s.depth == 3 && type == JSON_TOKEN_STRING)
	{
		/* the last of duplicate keys counts */
		if (l->item_field == ITEM_RECORD_ID)
		{
			if (it->record_id)
				pfree(it->record_id);
			it->record_id_len = strlen(token);
			it->record_id = palloc(Min(it->record_id_len, FH_ANSWER_ID_MAX) + 1);
			copy_text(it->record_id, FH_ANSWER_ID_MAX + 1, token, it->record_id_len);
		}
		else if (l->item_field == ITEM_RESULT)
			set_text(&it->result, token);
		else if (l->item_field == ITEM_DATA)
		{
			/* whole: the record's new data; the parser's copy is kept */
			if (it->data)
				pfree(it->data);
			it->data = token;
			it->data_len = strlen(token);
			kept = true;
		}
	}
	else if (it && l->s.depth == 3 && l->item_field == ITEM_METADATA &&
			 type != JSON_TOKEN_NULL)
		it->bad_metadata = true;
	else if (it && l->s.depth == 4 && l->in_keys && type != JSON_TOKEN_NULL)
		it->bad_metadata = true;
	else if (it && l->s.depth == 5 && l->in_keys && l->key)
	{
		if (type != JSON_TOKEN_STRING || it->nkeys >= FH_LAMBDA_MAX_KEYS)
			it->bad_metadata = true;
		else
		{
			it->keys[it->nkeys] = l->key;
			it->values[it->nkeys++] = dup_text(token);
			l->key = NULL;
		}
	}
	else if (it && l->s.depth == 3 && l->item_field != 0 && type != JSON_TOKEN_STRING)
	{
		/* a recordId, result or data that is not a string: none */
		if (l->item_field == ITEM_RECORD_ID && it->record_id)
		{
			pfree(it->record_id);
			it->record_id = NULL;
		}
	}
	if (!kept)
		pfree(token);
}

bool
fh_lambda_answer(const char *body, size_t len, int max_items, FhLambdaAnswer *out)
{
	LambdaScan	l;
	JsonSemAction sem = {0};

	memset(out, 0, sizeof(*out));
	out->max_items = Max(max_items, 0);
	out->item = palloc0(sizeof(FhLambdaItem) * Max(max_items, 1));
	memset(&l, 0, sizeof(l));
	l.out = out;
	sem.semstate = &l;
	sem.object_start = lambda_object_start;
	sem.object_end = lambda_end;
	sem.array_start = lambda_array_start;
	sem.array_end = lambda_end;
	sem.object_field_start = lambda_field_start;
	sem.array_element_start = lambda_element_start;
	sem.scalar = lambda_scalar;
	out->json = parse_json(body, len, &sem) && l.s.object;
	if (l.key)
		pfree(l.key);
	if (!out->json)
	{
		/* not an answer: nothing of it counts */
		for (int i = 0; i < out->max_items; i++)
			clear_lambda_item(&out->item[i]);
		out->records_seen = false;
		out->items = 0;
	}
	return out->json;
}

void
fh_lambda_answer_free(FhLambdaAnswer *a)
{
	if (a->item == NULL)
		return;
	for (int i = 0; i < a->max_items; i++)
		clear_lambda_item(&a->item[i]);
	pfree(a->item);
	a->item = NULL;
}

/* ---------- a CloudWatch Logs subscription record ---------- */

enum
{
	CWL_MESSAGE_TYPE = 1,
	CWL_LOG_EVENTS
};
static const char *const cwl_fields[] = {"messageType", "logEvents", NULL};

/* depths: 1 the record, 2 the logEvents array, 3 an event */
typedef struct CwlScan
{
	JsonScan	s;
	FhCwlRecord *out;
	bool		in_events;
	bool		event_message;	/* the member of an event being read */
	bool		event_has_message;
	int			room;			/* of messages[] */
} CwlScan;

static void
cwl_array_start(void *state)
{
	CwlScan    *c = state;

	if (++c->s.depth == 2 && c->s.field == CWL_LOG_EVENTS)
		c->in_events = c->out->events_seen = true;
	else if (c->s.depth == 3 && c->in_events)
		c->out->bad_event = true;	/* an event that is an array */
}

static void
cwl_object_end(void *state)
{
	CwlScan    *c = state;

	if (c->s.depth == 3 && c->in_events && !c->event_has_message)
		c->out->bad_event = true;
	c->s.depth--;
}

static void
cwl_array_end(void *state)
{
	CwlScan    *c = state;

	if (c->s.depth == 2)
		c->in_events = false;
	c->s.depth--;
}

static void
cwl_element_start(void *state, bool isnull)
{
	CwlScan    *c = state;

	/*
	 * A new event: no member read yet (an array's strings are at the depth
	 * of an event's members, and must not count as the last one's message)
	 */
	if (c->s.depth == 2 && c->in_events)
		c->event_has_message = c->event_message = false;
}

static void
cwl_field_start(void *state, char *fname, bool isnull)
{
	CwlScan    *c = state;

	if (c->s.depth == 1)
		c->s.field = field_of(fname, cwl_fields);
	else if (c->s.depth == 3 && c->in_events)
		c->event_message = strcmp(fname, "message") == 0;
	pfree(fname);
}

static void
cwl_scalar(void *state, char *token, JsonTokenType type)
{
	CwlScan    *c = state;
	FhCwlRecord *r = c->out;

	if (c->s.depth == 1 && c->s.field == CWL_MESSAGE_TYPE)
	{
		r->control = type == JSON_TOKEN_STRING && strcmp(token, "CONTROL_MESSAGE") == 0;
		r->data_message = type == JSON_TOKEN_STRING && strcmp(token, "DATA_MESSAGE") == 0;
	}
	else if (c->s.depth == 2 && c->in_events)
		r->bad_event = true;	/* an event that is no object */
	else if (c->s.depth == 3 && c->in_events && c->event_message)
	{
		if (type != JSON_TOKEN_STRING || c->event_has_message)
			r->bad_event = true;
		else
		{
			if (r->nmessages == c->room)
			{
				c->room = c->room ? 2 * c->room : 16;
				r->messages = r->messages ?
					repalloc(r->messages, sizeof(char *) * c->room) :
					palloc(sizeof(char *) * c->room);
				r->lens = r->lens ?
					repalloc(r->lens, sizeof(size_t) * c->room) :
					palloc(sizeof(size_t) * c->room);
			}
			/* whole: the record's data; the parser's copy is kept */
			r->messages[r->nmessages] = token;
			r->lens[r->nmessages++] = strlen(token);
			c->event_has_message = true;
			return;
		}
	}
	pfree(token);
}

bool
fh_cwl_record(const char *body, size_t len, FhCwlRecord *out)
{
	CwlScan		c;
	JsonSemAction sem = {0};

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.out = out;
	sem.semstate = &c;
	sem.object_start = scan_object_start;
	sem.object_end = cwl_object_end;
	sem.array_start = cwl_array_start;
	sem.array_end = cwl_array_end;
	sem.object_field_start = cwl_field_start;
	sem.array_element_start = cwl_element_start;
	sem.scalar = cwl_scalar;
	out->json = parse_json(body, len, &sem) && c.s.object;
	if (!out->json)
	{
		for (int i = 0; i < out->nmessages; i++)
			pfree(out->messages[i]);
		if (out->messages)
		{
			pfree(out->messages);
			pfree(out->lens);
		}
		memset(out, 0, sizeof(*out));
	}
	return out->json;
}

/* ---------- S3's XML answers ---------- */

/*
 * The text of element node into buf (size bytes): its text and CDATA
 * children, cut like copy_text.  Returns the text's whole length.  Entity
 * references are not followed: S3 sends none beyond the predefined ones,
 * which libxml2 turns into text, and following a document's own entities
 * could expand a small body into gigabytes.
 */
static size_t
element_text(xmlNodePtr node, char *buf, size_t size)
{
	size_t		n = 0;
	size_t		total = 0;
	bool		cut = false;

	buf[0] = '\0';
	for (xmlNodePtr c = node->children; c; c = c->next)
	{
		size_t		len;

		if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) ||
			c->content == NULL)
			continue;
		len = strlen((const char *) c->content);
		total += len;
		if (!cut)
		{
			size_t		copied = copy_text(buf + n, size - n, (const char *) c->content, len);

			cut = copied < len;
			n += copied;
		}
	}
	return total;
}

void
fh_s3_answer(const char *body, size_t len, FhS3Answer *out)
{
	xmlDocPtr	doc;
	xmlNodePtr	node;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > INT_MAX)
		return;
	doc = xmlReadMemory(body, (int) len, NULL, NULL,
						XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL)
		return;
	out->xml = true;

	/* depth first, without recursion; the first element of each name */
	node = xmlDocGetRootElement(doc);
	while (node && !(out->has_code && out->has_message && out->has_upload_id))
	{
		if (node->type == XML_ELEMENT_NODE)
		{
			const char *name = (const char *) node->name;

			if (!out->has_code && strcmp(name, "Code") == 0)
			{
				element_text(node, out->code, sizeof(out->code));
				out->has_code = true;
			}
			else if (!out->has_message && strcmp(name, "Message") == 0)
			{
				element_text(node, out->message, sizeof(out->message));
				out->has_message = true;
			}
			else if (!out->has_upload_id && strcmp(name, "UploadId") == 0)
			{
				/* one cut short is no UploadId ("") */
				if (element_text(node, out->upload_id, sizeof(out->upload_id)) >
					FH_S3_UPLOAD_ID_MAX)
					out->upload_id[0] = '\0';
				out->has_upload_id = true;
			}
		}
		/*
		 * Into elements only: an entity reference's child is the entity's
		 * declaration, whose parent is the DTD, not the reference; a walk
		 * through it would climb out elsewhere in the document.
		 */
		if (node->type == XML_ELEMENT_NODE && node->children)
			node = node->children;
		else
		{
			while (node && node->next == NULL)
				node = node->parent;
			if (node)
				node = node->next;
		}
	}
	xmlFreeDoc(doc);
}
