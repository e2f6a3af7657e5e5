/*-------------------------------------------------------------------------
 *
 * sink_redshift.c
 *	  destination 'redshift': Firehose's way into Amazon Redshift
 *	  (firehose.md 1.7): the part goes to S3 first, as the s3 destination
 *	  writes it, then Redshift loads it with COPY over a libpq connection
 *	  (Redshift speaks PostgreSQL's protocol).
 *
 * A part is three steps, each a request of its own, answered NEXT until
 * the last:
 *	RS_OBJECT    the part's object, by the s3 sink itself (sink_s3.c: key
 *	             layout, compression, multipart upload), with its own view
 *	             of the part and the options under "s3";
 *	RS_MANIFEST  a Redshift manifest listing that object,
 *	             {"entries":[{"url":"s3://bucket/key","mandatory":true}]},
 *	             under <prefix>manifests/yyyy/MM/dd/HH/ (the object's time
 *	             and uuid, no extension);
 *	RS_COPY      on the stream's connection (pgconn.c, as the postgres
 *	             destination's):
 *	             COPY "schema"."table" ("col", ...) FROM 's3://<manifest>'
 *	             CREDENTIALS '<credentials>' MANIFEST <copy_options>
 * A failed step is retried alone: the object and the manifest are written
 * once, the COPY is sent again.  As Firehose does, every COPY error is
 * retried until retry_duration runs out; then (give_up) the manifest is
 * written once more under <prefix>errors/manifests/..., Firehose's folder
 * of skipped objects for a manual backfill, and the part's records fail
 * with the key of that manifest in their message.  The objects stay:
 * they are the data.
 *
 * The statement is built once per stream: identifiers always quoted
 * (Redshift's reserved words are not PostgreSQL's), the literals checked
 * or escaped, copy_options checked to be options and nothing more (no
 * statement separator, no comment, no literal Redshift would read
 * differently).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "utils/builtins.h"
#include "utils/json.h"

#define MB					(1024LL * 1024LL)

typedef struct RsConfig
{
	char	   *conninfo;
	char	   *table;
	Jsonb	   *columns;
	char	   *copy_options;
	char	   *iam_role;
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *sslmode;
	char	   *ca_file;

	void	   *s3;				/* the s3 sink's config of option "s3" */
	FhPgConnection conn;
	char	   *stream;
	char	   *copy_head;		/* COPY ... FROM */
	char	   *copy_tail;		/* CREDENTIALS ... MANIFEST <copy_options> */
} RsConfig;

#define RC(member) FH_FIELD(RsConfig, member)

static Jsonb *rs_s3_normalize(Jsonb *value);
static Jsonb *rs_columns_normalize(Jsonb *value);

static const FhOptionDef rs_options[] = {
	{"s3", FH_OPT_OBJECT, .required = true, .location = true, .nested = fh_s3_options,
		.normalize = rs_s3_normalize,
	.what = "an object of S3 options such as {\"bucket\": \"my-bucket\", \"region\": \"eu-west-1\"}"},
	{"conninfo", FH_OPT_STRING, 0, 8192, NULL, NULL, false, true, .location = true,
	RC(conninfo), .redact = fh_pg_conninfo_redact},
	{"table", FH_OPT_STRING, 0, 200, NULL, NULL, false, true, .location = true, RC(table)},
	{"columns", FH_OPT_ARRAY, .normalize = rs_columns_normalize,
	.what = "an array of column names", RC(columns)},
	{"copy_options", FH_OPT_STRING, 0, 10240, "\"\"", RC(copy_options)},
	{"iam_role", FH_OPT_STRING, 0, 2048, NULL, RC(iam_role)},
	{"access_key_id", FH_OPT_STRING, 0, 128, NULL, NULL, true, RC(access_key_id)},
	{"secret_access_key", FH_OPT_STRING, 0, 256, NULL, NULL, true, RC(secret_access_key)},
	{"session_token", FH_OPT_STRING, 0, 8192, NULL, NULL, true, RC(session_token)},
	{"sslmode", FH_OPT_ENUM, 0, 0, NULL, fh_pg_sslmodes, RC(sslmode)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, RC(ca_file)},
	{NULL}
};
#undef RC

/* ---------- options ---------- */

static void
rs_error(const char *msg, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/*
 * The options under "s3": those of an s3 destination, less what Firehose's
 * Redshift destination refuses (firehose.md 1.7, 3.3): compressions COPY
 * cannot read, expressions in the prefix, an error output prefix; and what
 * the s3 destination alone has (format conversion, dynamic partitioning).
 */
static Jsonb *
rs_s3_normalize(Jsonb *value)
{
	static const char *const s3_only[] = {
		"error_output_prefix", "format", "partition_keys", "max_active_partitions", NULL
	};
	char	   *s;

	if (fh_jsonb_get_text(value, "compression", &s) &&
		(strcmp(s, "snappy") == 0 || strcmp(s, "hadoop_snappy") == 0 ||
		 strcmp(s, "zip") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("compression \"%s\" is not available for destination \"redshift\"", s),
				 errdetail("Redshift's COPY cannot read Snappy or ZIP objects; Firehose refuses them for its Redshift destination too."),
				 errhint("Use \"gzip\" (with GZIP in \"copy_options\"), \"zstd\" (with ZSTD) or \"none\".")));
	for (int i = 0; s3_only[i]; i++)
		if (fh_jsonb_get(value, s3_only[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" of \"s3\" is not available for destination \"redshift\"",
							s3_only[i]),
					 errdetail("Objects for Redshift go under the prefix as they are, with manifests/ and errors/ beside them, as in Firehose.")));
	if (fh_jsonb_get_text(value, "prefix", &s) && strstr(s, "!{") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the \"prefix\" of \"s3\" must have no expressions for destination \"redshift\""),
				 errdetail("Firehose's Redshift destination takes a plain prefix; objects go under <prefix>yyyy/MM/dd/HH/."),
				 errhint("Give a prefix such as \"events/\".")));
	return fh_options_normalize_sink(&fh_sink_s3, NULL, value, false);
}

static Jsonb *
rs_columns_normalize(Jsonb *value)
{
	/* DataTableColumns: up to 10240 characters, about 1600 columns */
	return fh_pg_column_names(value, "columns", 1600);
}

/*
 * The words of copy_options outside its literals, upper-cased, or NULL
 * with *why when it is more than options: a statement separator or a
 * comment, a character other than letters, digits, blanks and , . ( ) = -
 * outside literals, an unterminated literal, or a backslash before a quote
 * (Redshift reads '\'' as a quote inside the literal, PostgreSQL as its
 * end: either reading must give the same statement).
 */
static List *
copy_option_words(const char *s, const char **why)
{
	List	   *words = NIL;
	const char *p = s;

	while (*p)
	{
		unsigned char ch = (unsigned char) *p;

		if (ch < 0x20 && ch != ' ' && ch != '\t' && ch != '\n')
		{
			*why = "It has a control character.";
			return NULL;
		}
		if (ch == '\'')
		{
			for (p++;; p++)
			{
				if (*p == '\0')
				{
					*why = "A quoted literal is not closed.";
					return NULL;
				}
				if (*p == '\\' && p[1] == '\'')
				{
					*why = "A literal has a backslash before a quote, which Redshift and PostgreSQL read differently.";
					return NULL;
				}
				if ((unsigned char) *p < 0x20 && *p != '\t')
				{
					*why = "A literal has a control character.";
					return NULL;
				}
				if (*p == '\'' && p[1] == '\'')
					p++;
				else if (*p == '\'')
					break;
			}
			p++;
			continue;
		}
		if (isalnum(ch) || ch == '_')
		{
			const char *start = p;
			char	   *w;

			while (isalnum((unsigned char) *p) || *p == '_')
				p++;
			w = pnstrdup(start, p - start);
			for (char *q = w; *q; q++)
				*q = pg_toupper((unsigned char) *q);
			words = lappend(words, w);
			continue;
		}
		if (ch == '-' && p[1] == '-')
		{
			*why = "It has a comment (--).";
			return NULL;
		}
		if (!strchr(" \t\n,.()=-", ch))
		{
			*why = psprintf("It has \"%c\" outside a quoted literal; only option words, numbers, literals and , . ( ) = - may appear.", ch);
			return NULL;
		}
		p++;
	}
	return words;
}

static bool
has_word(List *words, const char *w)
{
	ListCell   *lc;

	foreach(lc, words)
		if (strcmp(lfirst(lc), w) == 0)
			return true;
	return false;
}

/*
 * copy_options are COPY's options and nothing more, without what firehose
 * writes itself, and they read the objects as they are compressed.
 */
static void
check_copy_options(const char *copy_options, const char *compression)
{
	static const char *const ours[] = {
		"CREDENTIALS", "IAM_ROLE", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY",
		"SESSION_TOKEN", "MANIFEST", "FROM", NULL
	};
	const char *why = NULL;
	List	   *words = copy_option_words(copy_options, &why);
	bool		gzip;
	bool		zstd;

	if (why)
		rs_error("option \"copy_options\" is not a list of COPY options", why,
				 "Give Redshift COPY options such as JSON 'auto' GZIP TIMEFORMAT 'auto'; write a quote inside a literal as ''.");
	for (int i = 0; ours[i]; i++)
		if (has_word(words, ours[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"copy_options\" must not contain %s", ours[i]),
					 errdetail("firehose writes the FROM clause, the credentials and MANIFEST of the COPY itself."),
					 errhint("Give the credentials in \"iam_role\" or \"access_key_id\" and \"secret_access_key\".")));
	gzip = has_word(words, "GZIP");
	zstd = has_word(words, "ZSTD");
	if (strcmp(compression, "gzip") == 0 && !gzip)
		rs_error("the objects are compressed with gzip, but option \"copy_options\" does not say GZIP",
				 "Redshift's COPY reads compressed objects only when told so.",
				 "Add GZIP to \"copy_options\".");
	if (strcmp(compression, "zstd") == 0 && !zstd)
		rs_error("the objects are compressed with zstd, but option \"copy_options\" does not say ZSTD",
				 "Redshift's COPY reads compressed objects only when told so.",
				 "Add ZSTD to \"copy_options\".");
	if ((gzip && strcmp(compression, "gzip") != 0) || (zstd && strcmp(compression, "zstd") != 0) ||
		has_word(words, "BZIP2") || has_word(words, "LZOP"))
		rs_error("option \"copy_options\" names a compression the objects do not have",
				 psprintf("The objects are written with compression \"%s\".", compression),
				 "Set \"compression\" of \"s3\" to match, or leave the compression out of \"copy_options\".");
}

/* every character of s is a letter, a digit or one of more */
static bool
only_chars(const char *s, const char *more)
{
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char) *p) && !strchr(more, *p))
			return false;
	return *s != '\0';
}

/*
 * The credentials COPY gives Redshift to read the bucket: a role, or keys
 * (secrets, never named in a message).  They go into a literal of the
 * statement, so their characters are checked.
 */
static void
check_credentials(Jsonb *o)
{
	char	   *role = NULL;
	char	   *id = NULL;
	char	   *secret = NULL;
	char	   *token = NULL;
	bool		has_role = fh_jsonb_get_text(o, "iam_role", &role);
	bool		has_id = fh_jsonb_get_text(o, "access_key_id", &id);
	bool		has_secret = fh_jsonb_get_text(o, "secret_access_key", &secret);
	bool		has_token = fh_jsonb_get_text(o, "session_token", &token);

	if (has_role == (has_id || has_secret))
		rs_error("destination \"redshift\" needs either \"iam_role\" or \"access_key_id\" and \"secret_access_key\"",
				 "They are the credentials COPY gives Redshift to read the S3 bucket.",
				 "Give \"iam_role\": \"arn:aws:iam::123456789012:role/MyRedshiftRole\", or a key pair.");
	if (has_role && (strncmp(role, "arn:", 4) != 0 || !only_chars(role, ":/_+=,.@-")))
		rs_error("option \"iam_role\" is not a role ARN",
				 "It must be an ARN such as arn:aws:iam::123456789012:role/MyRedshiftRole (several, for role chaining, separated by commas).",
				 NULL);
	if (has_id != has_secret)
		rs_error("options \"access_key_id\" and \"secret_access_key\" go together", NULL, NULL);
	if (has_id && !only_chars(id, ""))
		rs_error("option \"access_key_id\" is not an access key id",
				 "An access key id has letters and digits only.", NULL);
	if (has_secret && !only_chars(secret, "/+="))
		rs_error("option \"secret_access_key\" is not a secret access key",
				 "A secret access key has letters, digits, / + and = only.", NULL);
	if (has_token && !has_id)
		rs_error("option \"session_token\" needs \"access_key_id\" and \"secret_access_key\"", NULL, NULL);
	if (has_token && !only_chars(token, "/+="))
		rs_error("option \"session_token\" is not a session token",
				 "A session token has letters, digits, / + and = only.", NULL);
}

/* Firehose's ranges for Redshift (firehose.md 1.7, 2) */
static void
check_range(Jsonb *o, const char *option, int64 min, int64 max, const char *unit,
			int64 per_unit)
{
	int64		v = fh_jsonb_get_int(o, option, min);

	if (v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between " INT64_FORMAT " and " INT64_FORMAT " %s for destination \"redshift\"",
						option, min / per_unit, max / per_unit, unit),
				 errdetail("These are Firehose's bounds for Redshift.")));
}

static void
rs_validate(Jsonb *o)
{
	char	   *s = NULL;
	char	   *schema;
	char	   *name;
	char	   *compression = "none";
	Jsonb	   *s3 = JsonbValueToJsonb(fh_jsonb_get(o, "s3"));

	fh_jsonb_get_text(o, "conninfo", &s);
	fh_pg_conninfo_validate(s);
	fh_jsonb_get_text(o, "table", &s);
	fh_pg_split_table("table", s, &schema, &name);
	fh_jsonb_get_text(s3, "compression", &compression);
	fh_jsonb_get_text(o, "copy_options", &s);
	check_copy_options(s, compression);
	check_credentials(o);
	check_range(o, "buffer_size", 1 * MB, 128 * MB, "MB", MB);
	check_range(o, "buffer_interval", 0, 900000, "seconds", 1000);
	check_range(o, "retry_duration", 0, 7200, "seconds", 1);
}

/* ---------- the statement ---------- */

/* name as a quoted identifier, always (Redshift reserves other words) */
static void
append_ident(StringInfo out, const char *name)
{
	appendStringInfoChar(out, '"');
	for (const char *p = name; *p; p++)
	{
		if (*p == '"')
			appendStringInfoChar(out, '"');
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '"');
}

/*
 * s as a literal that Redshift (backslash escapes) reads as s: quotes and
 * backslashes doubled.  (Only an S3 key: no control characters in it.)
 */
static void
append_literal(StringInfo out, const char *s)
{
	appendStringInfoChar(out, '\'');
	for (const char *p = s; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			appendStringInfoChar(out, *p);
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '\'');
}

static void *
rs_configure(Jsonb *o, const char *stream, int32 version)
{
	RsConfig   *c = palloc0(sizeof(RsConfig));
	char	   *schema;
	char	   *name;
	StringInfoData sql;

	fh_options_load(rs_options, o, c);
	c->stream = pstrdup(stream);
	c->s3 = fh_sink_s3.configure(JsonbValueToJsonb(fh_jsonb_get(o, "s3")), stream, version);
	fh_pg_connection(c->conninfo, c->sslmode, c->ca_file, &c->conn);

	initStringInfo(&sql);
	fh_pg_split_table("table", c->table, &schema, &name);
	appendStringInfoString(&sql, "COPY ");
	append_ident(&sql, schema);
	appendStringInfoChar(&sql, '.');
	append_ident(&sql, name);
	if (c->columns)
	{
		JsonbIterator *it = JsonbIteratorInit(&c->columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		const char *sep = " (";

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
			{
				appendStringInfoString(&sql, sep);
				append_ident(&sql, pnstrdup(v.val.string.val, v.val.string.len));
				sep = ", ";
			}
		appendStringInfoChar(&sql, ')');
	}
	appendStringInfoString(&sql, " FROM ");
	c->copy_head = sql.data;

	/* the credentials' characters are checked: no escaping to do */
	initStringInfo(&sql);
	if (c->iam_role)
		appendStringInfo(&sql, "CREDENTIALS 'aws_iam_role=%s'", c->iam_role);
	else
		appendStringInfo(&sql, "CREDENTIALS 'aws_access_key_id=%s;aws_secret_access_key=%s%s%s'",
						 c->access_key_id, c->secret_access_key,
						 c->session_token ? ";token=" : "",
						 c->session_token ? c->session_token : "");
	appendStringInfoString(&sql, " MANIFEST");
	if (c->copy_options[0] != '\0')
		appendStringInfo(&sql, " %s", c->copy_options);
	c->copy_tail = sql.data;
	return c;
}

static void
rs_limits(void *config, int *max_records, int64 *max_bytes)
{
	fh_sink_s3.limits(((RsConfig *) config)->s3, max_records, max_bytes);
}

static char *
rs_target(Jsonb *o)
{
	FhPgConnection conn;
	char	   *conninfo = NULL;
	char	   *table = NULL;

	fh_jsonb_get_text(o, "conninfo", &conninfo);
	fh_jsonb_get_text(o, "table", &table);
	fh_pg_connection(conninfo, NULL, NULL, &conn);
	return psprintf("redshift://%s %s", conn.target + strlen("postgres://"), table);
}

/* ---------- steps ---------- */

typedef enum RsStep
{
	RS_OBJECT,					/* the part's object, by the s3 sink */
	RS_MANIFEST,				/* its manifest */
	RS_COPY,					/* COPY ... MANIFEST */
	RS_ERRORS,					/* the manifest under errors/, on giving up */
	RS_DONE
} RsStep;

typedef struct RsState
{
	RsStep		step;
	FhPartView	s3view;			/* what the s3 sink sees of the part */
	char	   *manifest;		/* the manifest's JSON */
	char	   *manifest_key;
	char	   *errors_key;
	FhPgRequest pg;
	FhVerdict	final;			/* while writing errors/: the COPY's verdict */
} RsState;

/* the manifest of part's object and the keys of its two copies, or false */
static bool
start_part(RsConfig *c, FhPartView *part, RsState *st, FhVerdict *verdict)
{
	char	   *why = NULL;
	char	   *object_key = fh_s3_key(c->s3, part, NULL, &why);
	StringInfoData m;

	if (object_key)
		st->manifest_key = fh_s3_key(c->s3, part, "manifests", &why);
	if (st->manifest_key)
		st->errors_key = fh_s3_key(c->s3, part, "errors/manifests", &why);
	if (st->errors_key == NULL)
	{
		fh_verdict_set(verdict, FH_OUTCOME_FAIL, "S3.InvalidObjectKey",
					   psprintf("The object key could not be made: %s", why));
		return false;
	}
	/* Redshift's manifest format: the object, which must be there */
	initStringInfo(&m);
	appendStringInfoString(&m, "{\"entries\":[{\"url\":");
	escape_json(&m, fh_s3_url(c->s3, object_key));
	appendStringInfoString(&m, ",\"mandatory\":true}]}");
	st->manifest = m.data;
	return true;
}

static void
rs_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *verdict)
{
	RsConfig   *c = config;
	RsState    *st = part->state;
	StringInfoData sql;

	if (st == NULL)
	{
		st = palloc0(sizeof(RsState));
		if (!start_part(c, part, st, verdict))
			return;				/* req->url stays NULL: fails at once */
		st->s3view = *part;
		st->s3view.state = NULL;
		part->state = st;
	}
	switch (st->step)
	{
		case RS_OBJECT:
			fh_sink_s3.encode(c->s3, &st->s3view, req, verdict);
			break;
		case RS_MANIFEST:
			fh_s3_put(c->s3, st->manifest_key, st->manifest, strlen(st->manifest),
					  "application/json", req);
			break;
		case RS_COPY:
			initStringInfo(&sql);
			appendStringInfoString(&sql, c->copy_head);
			append_literal(&sql, fh_s3_url(c->s3, st->manifest_key));
			appendStringInfo(&sql, " %s", c->copy_tail);
			memset(&st->pg, 0, sizeof(st->pg));
			st->pg.key = c->stream;
			st->pg.keywords = c->conn.keywords;
			st->pg.values = c->conn.values;
			st->pg.conn_signature = c->conn.signature;
			st->pg.sql = sql.data;
			req->pg = &st->pg;
			req->url = c->conn.target;
			break;
		case RS_ERRORS:
			fh_s3_put(c->s3, st->errors_key, st->manifest, strlen(st->manifest),
					  "application/json", req);
			break;
		case RS_DONE:
			*verdict = st->final;
			break;
	}
}

/*
 * Firehose's code of a COPY error (the Redshift.* codes of its delivery
 * errors), by SQLSTATE.
 */
static const char *
copy_error_code(const char *state)
{
	static const char *const codes[][2] = {
		{"42P01", "Redshift.TableNotFound"},
		{"42703", "Redshift.ColumnNotFound"},
		{"42601", "Redshift.SyntaxError"},
		{"42501", "Redshift.AccessDenied"},
		{"28000", "Redshift.AuthenticationFailed"},
		{"28P01", "Redshift.AuthenticationFailed"},
		{"25006", "Redshift.ReadOnlyCluster"},
		{"53100", "Redshift.DiskFull"},
		{NULL, NULL}
	};

	for (int i = 0; codes[i][0]; i++)
		if (strcmp(state, codes[i][0]) == 0)
			return codes[i][1];
	if (strncmp(state, "08", 2) == 0 || state[0] == '\0')
		return "Redshift.ConnectionFailed";
	return "Redshift.DataLoadFailed";
}

/* the COPY's answer: done, or (any error, as in Firehose) retried */
static void
copy_verdict(FhResponse *resp, FhVerdict *v)
{
	for (int i = 0; i < resp->pg_nresults; i++)
	{
		const FhPgResult *r = &resp->pg_results[i];

		if (r->ok)
			continue;
		fh_verdict_set(v, FH_OUTCOME_RETRY, copy_error_code(r->sqlstate),
					   psprintf("COPY failed (SQLSTATE %s): %s", r->sqlstate,
								r->message ? r->message : "(no message)"));
		return;
	}
	if (resp->pg_error || resp->pg_nresults == 0)
	{
		fh_verdict_set(v, FH_OUTCOME_RETRY, "Redshift.ConnectionFailed",
					   pstrdup(resp->pg_error ? resp->pg_error : "no answer to COPY"));
		return;
	}
	fh_verdict_set(v, FH_OUTCOME_OK, NULL, NULL);
}

static void
rs_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v)
{
	RsConfig   *c = config;
	RsState    *st = part->state;
	FhVerdict	put;

	v->delay_ms = 0;
	switch (st->step)
	{
		case RS_OBJECT:
			fh_sink_s3.classify(c->s3, &st->s3view, resp, v);
			if (v->outcome == FH_OUTCOME_OK)
			{
				st->step = RS_MANIFEST;
				v->outcome = FH_OUTCOME_NEXT;
			}
			break;
		case RS_MANIFEST:
			fh_s3_put_classify(resp, "PutObject (manifest)", v);
			if (v->outcome == FH_OUTCOME_OK)
			{
				st->step = RS_COPY;
				v->outcome = FH_OUTCOME_NEXT;
			}
			break;
		case RS_COPY:
			copy_verdict(resp, v);
			break;
		case RS_ERRORS:
			/* the records fail; their message says where to backfill from */
			fh_s3_put_classify(resp, "PutObject (errors manifest)", &put);
			*v = st->final;
			if (put.outcome == FH_OUTCOME_OK)
				v->error_message = psprintf("%s The manifest of the skipped objects is %s.",
											st->final.error_message,
											fh_s3_url(c->s3, st->errors_key));
			else
				v->error_message = psprintf("%s The manifest of the skipped objects could not be written to %s: %s",
											st->final.error_message,
											fh_s3_url(c->s3, st->errors_key),
											put.error_message);
			st->step = RS_DONE;
			st->final = *v;
			break;
		case RS_DONE:
			*v = st->final;
			break;
	}
}

/*
 * The part fails for good: during the upload, the s3 sink's own clean-up
 * (a multipart upload aborted); after a COPY that kept failing, the
 * manifest of the skipped objects under errors/.
 */
static bool
rs_give_up(void *config, FhPartView *part, const FhVerdict *verdict)
{
	RsConfig   *c = config;
	RsState    *st = part->state;

	if (st == NULL)
		return false;
	if (st->step == RS_OBJECT)
		return fh_sink_s3.give_up(c->s3, &st->s3view, verdict);
	if (st->step != RS_COPY)
		return false;
	st->final = *verdict;
	st->final.outcome = FH_OUTCOME_FAIL;
	st->step = RS_ERRORS;
	return true;
}

const FhSink fh_sink_redshift = {
	.name = "redshift",
	.options = rs_options,
	.default_retry_duration_s = 3600,
	.default_buffer_interval_ms = 300000,
	.buffer_size_is_hint = true,
	.validate = rs_validate,
	.configure = rs_configure,
	.limits = rs_limits,
	.encode = rs_encode,
	.classify = rs_classify,
	.give_up = rs_give_up,
	.target = rs_target,
};
