/*-------------------------------------------------------------------------
 *
 * sink_postgres.c
 *	  destination 'postgres': JSON records into a table of another
 *	  PostgreSQL server, one transaction per part.
 *
 * A part is loaded by one step (one simple query on the stream's libpq
 * connection, run by pgconn.c):
 *	BEGIN;
 *	COPY <table> (<columns>) FROM STDIN;		(mode insert)
 *	COMMIT
 * or, for mode upsert and with exactly_once, through a temporary copy of
 * the table that also holds each record's id:
 *	BEGIN; [SELECT pg_advisory_xact_lock(...);]
 *	CREATE TEMPORARY TABLE firehose_stage (LIKE <table>) ...; COPY it;
 *	[DELETE the records the ledger has;]
 *	INSERT INTO <table> SELECT ... [ON CONFLICT (<key_columns>) DO UPDATE];
 *	[INSERT INTO <ledger> the ids of the records;]
 *	COMMIT
 * with the records as COPY text: each column's value taken from the
 * record's JSON by key (or by the path of option columns), as text the
 * column's type input reads (json and jsonb columns get JSON text).  The
 * target's columns and types are read once per connection (the step runs
 * init_sql first on a new connection), so a step built for a connection
 * that has gone is answered "stale" and built again.
 *
 * A record the target refuses (a value its type does not read, a NOT NULL
 * or other constraint: SQLSTATE classes 22, 23 and 44) fails alone: COPY's
 * error names its line, which is the record; the rest is loaded again
 * without it.  An error that names no line (raised by the ON CONFLICT
 * insert or at COMMIT) is found by bisection: probes that load a half of
 * the records and roll back, halving the half that fails down to one
 * record.  Connection errors, serialization failures, deadlocks,
 * shutdowns, read-only and overloaded targets are retried; permission and
 * schema errors fail the part at once.
 *
 * Exactly once: the ids of the records loaded (firehose's record ids,
 * unique in the source database) go into the ledger table on the target,
 * as a multirange, in the same transaction as the rows, under the stream's
 * key (system identifier, database, stream).  A part sent again after the
 * worker stopped between the target's COMMIT and recording it may be cut
 * differently the second time (a batch is cut again from the staging
 * tables), so the ledger is asked per record: the staged records it has are
 * deleted before the INSERT.  An advisory lock on the stream's key orders
 * two transactions of one stream (a retry and one whose connection has not
 * ended yet), so the second sees what the first committed.
 *
 * The ledger is pruned in the same transaction: each row carries the xmax
 * of the upper snapshot of its part's batch (batch_xmax), and the rows of
 * this stream with batch_xmax below the xmax of the stream's consumed
 * snapshot (as committed and flushed at the source: FhPartView.done_xmax)
 * are deleted.  Snapshots are taken in time order, so such a batch's
 * records, all visible in its upper snapshot, are visible in consumed:
 * recorded for good, never sent again, whether the batch completed itself
 * or was cut again after a restart and completed as another batch.  A batch
 * cut before a crash and not recorded has batch_xmax at or above the
 * consumed snapshot its records are cut again from, so its rows stay until
 * they are recorded.  (Record ids would not do as the bound: they come from
 * a sequence in the order put() ran, not in commit order, and the lowest
 * unrecorded one would need a scan of the staging tables.)
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "libpq-fe.h"

#include "access/xlog.h"
#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#define PG_MAX_RECORDS		100000
#define PG_MAX_BYTES		(64 * 1024 * 1024)
#define DEFAULT_CA_BUNDLE	"/etc/ssl/certs/ca-certificates.crt"
/* for the files libpq would otherwise read from the server's home */
#define NO_FILE				"/nonexistent/firehose"

static const char *const modes[] = {"insert", "upsert", NULL};
const char *const fh_pg_sslmodes[] = {"disable", "allow", "prefer", "require",
"verify-ca", "verify-full", NULL};

/* conninfo keywords a stream may give; the rest are files or the server's */
static const char *const conninfo_allowed[] = {
	"host", "hostaddr", "port", "dbname", "user", "password", "connect_timeout",
	"client_encoding", "options", "application_name", "keepalives",
	"keepalives_idle", "keepalives_interval", "keepalives_count",
	"tcp_user_timeout", "target_session_attrs", "channel_binding", "sslsni",
	"ssl_min_protocol_version", "ssl_max_protocol_version", NULL
};

typedef struct PgColumn
{
	char	   *name;
	char	   *quoted;
	bool		json;			/* json or jsonb: values as JSON text */
	char	  **path;			/* keys from the record's root */
	int			depth;
} PgColumn;

typedef struct PgConfig
{
	char	   *conninfo;
	char	   *table;
	char	   *mode;
	bool		exactly_once;
	char	   *ledger_table;
	char	   *sslmode;
	char	   *ca_file;
	Jsonb	   *columns_map;
	Jsonb	   *key_columns;

	char	   *stream;
	char	   *qtable;			/* quoted, schema-qualified */
	char	   *qledger;
	bool		upsert;
	List	   *keys;			/* key column names */
	FhPgConnection conn;		/* libpq's parameters, the target for people */
	char	   *init_sql;
	MemoryContext cxt;			/* the config's: what classify() learns */

	/* the target's columns, as read on connection epoch */
	uint64		epoch;
	int			ncols;
	PgColumn   *cols;
	char	   *load_sql;		/* the statements after BEGIN */
	char	   *ledger_key;		/* the stream's key in the ledger */
	char	   *ledger_literal; /* the same as an SQL literal */
	int64		lock_key;		/* of its advisory lock */
} PgConfig;

#define PC(member) FH_FIELD(PgConfig, member)

static Jsonb *key_columns_normalize(Jsonb *value);

static const FhOptionDef pg_options[] = {
	{"conninfo", FH_OPT_STRING, 0, 8192, NULL, NULL, false, true, .location = true,
	PC(conninfo), .redact = fh_pg_conninfo_redact},
	{"table", FH_OPT_STRING, 0, 200, NULL, NULL, false, true, .location = true, PC(table)},
	{"columns", FH_OPT_STRMAP, 0, 0, NULL, PC(columns_map)},
	{"mode", FH_OPT_ENUM, 0, 0, "\"insert\"", modes, PC(mode)},
	{"key_columns", FH_OPT_ARRAY, .normalize = key_columns_normalize,
		.what = "an array of column names", PC(key_columns)},
	{"exactly_once", FH_OPT_BOOL, 0, 0, "false", PC(exactly_once)},
	{"ledger_table", FH_OPT_STRING, 0, 200, NULL, PC(ledger_table)},
	{"sslmode", FH_OPT_ENUM, 0, 0, NULL, fh_pg_sslmodes, PC(sslmode)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, PC(ca_file)},
	FH_BACKUP_OPTION,
	{NULL}
};
#undef PC

/* ---------- options ---------- */

static void
option_error(const char *option, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\"", option),
			 errdetail("%s", detail)));
}

/* conninfo's parameters (PQconninfoParse), or an ERROR saying what is wrong */
static PQconninfoOption *
conninfo_parse(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

	if (opts == NULL)
	{
		char	   *msg = err ? pstrdup(err) : "out of memory";
		size_t		len = strlen(msg);

		if (err)
			PQfreemem(err);
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		option_error("conninfo", psprintf("%s.", msg));
	}
	return opts;
}

/*
 * fh_pg_conninfo_redact
 *		conninfo shown without its password: keyword=value pairs, the
 *		password's value "********" (it is added to *secrets).
 */
char *
fh_pg_conninfo_redact(const char *value, List **secrets)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(value, &err);
	StringInfoData out;

	if (opts == NULL)
	{
		if (err)
			PQfreemem(err);
		return "********";		/* not readable: nothing of it shown */
	}
	initStringInfo(&out);
	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		const char *v = o->val;

		if (v == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0)
		{
			if (secrets && strlen(v) >= FH_MIN_SECRET_LEN)
				*secrets = lappend(*secrets, pstrdup(v));
			v = "********";
		}
		appendStringInfo(&out, "%s%s='", out.len ? " " : "", o->keyword);
		for (const char *p = v; *p; p++)
		{
			if (*p == '\'' || *p == '\\')
				appendStringInfoChar(&out, '\\');
			appendStringInfoChar(&out, *p);
		}
		appendStringInfoChar(&out, '\'');
	}
	PQconninfoFree(opts);
	return out.data;
}

/*
 * fh_pg_column_names
 *		Check that option's value is an array of 1 to max column names.
 */
Jsonb *
fh_pg_column_names(Jsonb *value, const char *option, int max)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (!JB_ROOT_IS_ARRAY(value) || JB_ROOT_IS_SCALAR(value))
		option_error(option, "It must be an array of column names.");
	it = JsonbIteratorInit(&value->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
		{
			if (v.type != jbvString || v.val.string.len == 0 ||
				v.val.string.len >= NAMEDATALEN)
				option_error(option, "Each element must be a column name.");
			n++;
		}
	if (n == 0 || n > max)
		option_error(option, psprintf("It must name 1 to %d columns.", max));
	return value;
}

static Jsonb *
key_columns_normalize(Jsonb *value)
{
	return fh_pg_column_names(value, "key_columns", 32);
}

/*
 * fh_pg_split_table
 *		"schema.table" split into its two names (as quote_identifier reads
 *		them), or an ERROR naming option.
 */
void
fh_pg_split_table(const char *option, const char *s, char **schema, char **name)
{
	List	   *parts;
	char	   *copy = pstrdup(s);

	if (!SplitIdentifierString(copy, '.', &parts) || list_length(parts) != 2)
		option_error(option, "It must be a schema-qualified table name such as \"public.events\".");
	*schema = linitial(parts);
	*name = lsecond(parts);
}

/* a JSON path of option columns: "key" or "$.key.key...", as its keys */
static char **
parse_path(const char *column, const char *path, int *depth)
{
	char	  **keys;
	char	   *p;
	int			n = 0;

	if (strncmp(path, "$.", 2) == 0)
		path += 2;
	else if (path[0] == '$' || path[0] == '\0')
		option_error("columns", psprintf("The path of column \"%s\" must be a key or \"$.key.key...\".", column));
	keys = palloc(sizeof(char *) * (strlen(path) / 2 + 2));
	p = pstrdup(path);
	for (;;)
	{
		char	   *dot = strchr(p, '.');

		if (dot)
			*dot = '\0';
		if (*p == '\0')
			option_error("columns", psprintf("The path of column \"%s\" has an empty key.", column));
		keys[n++] = p;
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	*depth = n;
	return keys;
}

static bool
is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
		strcmp(host, "::1") == 0;
}

/*
 * fh_pg_conninfo_validate
 *		ERROR unless conninfo names one host by name or address and one port,
 *		and only keywords a stream may give (no files, no server settings).
 */
void
fh_pg_conninfo_validate(const char *conninfo)
{
	PQconninfoOption *opts;
	bool		has_host = false;

	opts = conninfo_parse(conninfo);
	for (PQconninfoOption *c = opts; c->keyword; c++)
	{
		bool		allowed = false;

		if (c->val == NULL)
			continue;
		for (int i = 0; conninfo_allowed[i]; i++)
			allowed |= strcmp(conninfo_allowed[i], c->keyword) == 0;
		if (!allowed)
		{
			char	   *kw = pstrdup(c->keyword);

			PQconninfoFree(opts);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("connection parameter \"%s\" is not allowed in option \"conninfo\"", kw),
					 errdetail("It names a file or a setting of the database server, which a stream may not use."),
					 errhint("TLS is set by the options \"sslmode\" and \"ca_file\".")));
		}
		if ((strcmp(c->keyword, "host") == 0 || strcmp(c->keyword, "hostaddr") == 0) &&
			c->val[0] != '\0')
		{
			if (strchr(c->val, ',') || c->val[0] == '/' || c->val[0] == '@')
			{
				PQconninfoFree(opts);
				option_error("conninfo", "It must name one host by name or address (not a list, not a Unix socket).");
			}
			has_host = true;
		}
		if (strcmp(c->keyword, "port") == 0 && strchr(c->val, ','))
		{
			PQconninfoFree(opts);
			option_error("conninfo", "It must name one port.");
		}
	}
	PQconninfoFree(opts);
	if (!has_host)
		option_error("conninfo", "It must name the host (\"host=...\" or a URI such as postgresql://host/db); a Unix socket is not allowed.");
}

static void
pg_validate(Jsonb *o)
{
	char	   *conninfo = NULL;
	char	   *table = NULL;
	char	   *mode = "insert";
	char	   *s;
	char	   *schema;
	char	   *name;
	JsonbValue *v;

	fh_jsonb_get_text(o, "conninfo", &conninfo);
	fh_pg_conninfo_validate(conninfo);
	fh_jsonb_get_text(o, "table", &table);
	fh_pg_split_table("table", table, &schema, &name);
	if (fh_jsonb_get_text(o, "ledger_table", &s))
		fh_pg_split_table("ledger_table", s, &schema, &name);
	fh_jsonb_get_text(o, "mode", &mode);
	v = fh_jsonb_get(o, "key_columns");
	if (strcmp(mode, "upsert") == 0 && v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mode \"upsert\" requires option \"key_columns\""),
				 errhint("Name the columns of a unique index or primary key of the table.")));
	if (strcmp(mode, "upsert") != 0 && v != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"key_columns\" applies to mode \"upsert\" only")));
	v = fh_jsonb_get(o, "columns");
	if (v && v->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *key = NULL;
		int			depth;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				key = pnstrdup(kv.val.string.val, kv.val.string.len);
			else if (tok == WJB_VALUE)
				(void) parse_path(key, pnstrdup(kv.val.string.val, kv.val.string.len), &depth);
		}
	}
}

/*
 * fh_pg_connection
 *		libpq's parameters for conninfo (checked by fh_pg_conninfo_validate)
 *		with TLS by sslmode (NULL: verify-full, prefer for a loopback host)
 *		and ca_file (NULL: the system's bundle), no files of the server's
 *		user, and the database's encoding unless conninfo sets one; and the
 *		target for people, postgres://host:port/db.
 */
void
fh_pg_connection(const char *conninfo, const char *sslmode, const char *ca_file,
				 FhPgConnection *conn)
{
	PQconninfoOption *opts;
	const char *host = NULL;
	const char *port = "5432";
	const char *dbname = NULL;
	bool		has_client_encoding = false;
	int			n = 0;
	StringInfoData sig;
	const char **keywords;
	const char **values;

	opts = conninfo_parse(conninfo);
	for (PQconninfoOption *p = opts; p->keyword; p++)
		n++;
	keywords = palloc0(sizeof(char *) * (n + 9));
	values = palloc0(sizeof(char *) * (n + 9));
	n = 0;
	initStringInfo(&sig);
	for (PQconninfoOption *p = opts; p->keyword; p++)
	{
		if (p->val == NULL)
			continue;
		keywords[n] = pstrdup(p->keyword);
		values[n] = pstrdup(p->val);
		if (strcmp(p->keyword, "host") == 0)
			host = values[n];
		else if (strcmp(p->keyword, "hostaddr") == 0 && host == NULL)
			host = values[n];
		else if (strcmp(p->keyword, "port") == 0)
			port = values[n];
		else if (strcmp(p->keyword, "dbname") == 0)
			dbname = values[n];
		else if (strcmp(p->keyword, "client_encoding") == 0)
			has_client_encoding = true;
		n++;
	}
	PQconninfoFree(opts);
	if (!has_client_encoding)
	{
		/* the records are text of this database's encoding */
		keywords[n] = "client_encoding";
		values[n++] = (char *) GetDatabaseEncodingName();
	}
	if (sslmode == NULL)
		sslmode = host && is_loopback(host) ? "prefer" : "verify-full";
	keywords[n] = "sslmode";
	values[n++] = sslmode;
	keywords[n] = "sslrootcert";
	values[n++] = ca_file ? ca_file : DEFAULT_CA_BUNDLE;
	keywords[n] = "passfile";
	values[n++] = NO_FILE;
	keywords[n] = "sslcert";
	values[n++] = NO_FILE;
	keywords[n] = "sslkey";
	values[n++] = NO_FILE;
	for (int i = 0; i < n; i++)
		appendStringInfo(&sig, "%s=%s\n", keywords[i], values[i]);
	conn->keywords = keywords;
	conn->values = values;
	conn->signature = sig.data;
	conn->target = psprintf("postgres://%s:%s/%s", host ? host : "", port, dbname ? dbname : "");
}

static void *
pg_configure(Jsonb *o, const char *stream, int32 version)
{
	PgConfig   *c = palloc0(sizeof(PgConfig));
	char	   *schema;
	char	   *name;
	StringInfoData sql;

	fh_options_load(pg_options, o, c);
	c->cxt = CurrentMemoryContext;
	c->stream = pstrdup(stream);
	c->upsert = strcmp(c->mode, "upsert") == 0;
	fh_pg_split_table("table", c->table, &schema, &name);
	c->qtable = quote_qualified_identifier(schema, name);
	if (c->ledger_table)
		fh_pg_split_table("ledger_table", c->ledger_table, &schema, &name);
	else
		name = "firehose_ledger";
	c->qledger = quote_qualified_identifier(schema, name);
	c->ledger_key = psprintf(UINT64_FORMAT "/%u/%s", GetSystemIdentifier(), MyDatabaseId, stream);
	c->ledger_literal = quote_literal_cstr(c->ledger_key);
	c->lock_key = (int64) hash_bytes_extended((const unsigned char *) c->ledger_key,
											  strlen(c->ledger_key), 0x6c6f636b);
	if (c->key_columns)
	{
		JsonbIterator *it = JsonbIteratorInit(&c->key_columns->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				c->keys = lappend(c->keys, pnstrdup(v.val.string.val, v.val.string.len));
	}

	fh_pg_connection(c->conninfo, c->sslmode, c->ca_file, &c->conn);

	/* run on every new connection: the ledger, then the table's columns */
	initStringInfo(&sql);
	if (c->exactly_once)
		appendStringInfo(&sql,
						 "CREATE TABLE IF NOT EXISTS %s (stream text NOT NULL, "
						 "record_ids pg_catalog.int8multirange NOT NULL, records integer NOT NULL, "
						 "batch_xmax bigint NOT NULL, "
						 "delivered_at timestamptz NOT NULL DEFAULT pg_catalog.now());"
						 "CREATE INDEX IF NOT EXISTS %s ON %s USING gist (record_ids);",
						 c->qledger, quote_identifier(psprintf("%s_record_ids", name)),
						 c->qledger);
	appendStringInfo(&sql,
					 "SELECT a.attname, a.atttypid OPERATOR(pg_catalog.=) ANY "
					 "(ARRAY['pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype]::pg_catalog.oid[]) "
					 "FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass "
					 "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
					 "AND a.attgenerated OPERATOR(pg_catalog.=) '' "
					 "AND a.attidentity OPERATOR(pg_catalog.<>) 'a' ORDER BY a.attnum",
					 quote_literal_cstr(c->qtable));
	c->init_sql = sql.data;
	return c;
}

static void
pg_limits(void *config, int *max_records, int64 *max_bytes)
{
	*max_records = PG_MAX_RECORDS;
	*max_bytes = PG_MAX_BYTES;
}

static char *
pg_target(Jsonb *o)
{
	char	   *table = NULL;
	PgConfig   *c;

	fh_jsonb_get_text(o, "table", &table);
	c = pg_configure(o, "", 0);
	return psprintf("%s %s", c->conn.target, table);
}

/* ---------- the target's columns ---------- */

/*
 * Learn the target's columns from the answer of init_sql (the describe
 * query's rows: name, is json), for connection epoch; the statements that
 * load rows are made here once for them.  False, with verdict set, when
 * the mapping names a column the table lacks.
 */
static bool
learn_columns(PgConfig *c, const FhPgResult *r, uint64 epoch, FhVerdict *verdict)
{
	MemoryContext old = MemoryContextSwitchTo(c->cxt);
	PgColumn   *cols = palloc0(sizeof(PgColumn) * Max(1, r->nrows));
	int			n = 0;
	StringInfoData sql;
	StringInfoData list;
	ListCell   *lc;

	for (int i = 0; i < r->nrows; i++)
	{
		char	   *name = r->values[i * r->ncols];
		const char *path = name;

		if (c->columns_map)
		{
			JsonbValue *pv = getKeyJsonValueFromContainer(&c->columns_map->root, name,
														  strlen(name), NULL);

			if (pv == NULL)
				continue;		/* only the columns the mapping names */
			path = pnstrdup(pv->val.string.val, pv->val.string.len);
		}
		cols[n].name = pstrdup(name);
		cols[n].quoted = pstrdup(quote_identifier(name));
		cols[n].json = strcmp(r->values[i * r->ncols + 1], "t") == 0;
		if (c->columns_map)
			cols[n].path = parse_path(name, path, &cols[n].depth);
		else
		{
			cols[n].path = palloc(sizeof(char *));
			cols[n].path[0] = cols[n].name;
			cols[n].depth = 1;
		}
		n++;
	}
	MemoryContextSwitchTo(old);

	/* every column the mapping or key_columns names must exist */
	if (c->columns_map)
	{
		JsonbIterator *it = JsonbIteratorInit(&c->columns_map->root);
		JsonbValue	kv;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			bool		found = false;

			if (tok != WJB_KEY)
				continue;
			for (int i = 0; i < n; i++)
				found |= (strlen(cols[i].name) == kv.val.string.len &&
						  memcmp(cols[i].name, kv.val.string.val, kv.val.string.len) == 0);
			if (!found)
			{
				fh_verdict_set(verdict, FH_OUTCOME_FAIL, "Postgres.42703",
							   psprintf("Table %s has no column \"%.*s\" (option \"columns\").",
										c->qtable, kv.val.string.len, kv.val.string.val));
				return false;
			}
		}
	}
	foreach(lc, c->keys)
	{
		bool		found = false;

		for (int i = 0; i < n; i++)
			found |= strcmp(cols[i].name, lfirst(lc)) == 0;
		if (!found)
		{
			fh_verdict_set(verdict, FH_OUTCOME_FAIL, "Postgres.42703",
						   psprintf("The key column \"%s\" is not one of the columns loaded into table %s.",
									(char *) lfirst(lc), c->qtable));
			return false;
		}
	}
	if (n == 0)
	{
		fh_verdict_set(verdict, FH_OUTCOME_FAIL, "Postgres.42703",
					   psprintf("No column of table %s is to be loaded.", c->qtable));
		return false;
	}

	old = MemoryContextSwitchTo(c->cxt);
	initStringInfo(&list);
	for (int i = 0; i < n; i++)
		appendStringInfo(&list, "%s%s", i ? ", " : "", cols[i].quoted);
	initStringInfo(&sql);
	if (!c->upsert && !c->exactly_once)
		appendStringInfo(&sql, "COPY %s (%s) FROM STDIN;", c->qtable, list.data);
	else
	{
		StringInfoData keys;
		StringInfoData set;

		initStringInfo(&keys);
		initStringInfo(&set);
		foreach(lc, c->keys)
			appendStringInfo(&keys, "%s%s", keys.len ? ", " : "", quote_identifier(lfirst(lc)));
		for (int i = 0; i < n; i++)
		{
			bool		key = false;

			foreach(lc, c->keys)
				key |= strcmp(cols[i].name, lfirst(lc)) == 0;
			if (!key)
				appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "",
								 cols[i].quoted, cols[i].quoted);
		}

		/*
		 * Staged in a temporary copy of the table (its types and NOT NULLs,
		 * so that COPY names the line of a bad record) with each record's
		 * id, then one INSERT; of records with the same key the last one
		 * wins (ON CONFLICT cannot touch a row twice).
		 */
		appendStringInfo(&sql,
						 "CREATE TEMPORARY TABLE firehose_stage (LIKE %s INCLUDING DEFAULTS) ON COMMIT DROP;"
						 "ALTER TABLE pg_temp.firehose_stage ADD COLUMN firehose_rid bigint;"
						 "COPY pg_temp.firehose_stage (firehose_rid, %s) FROM STDIN;",
						 c->qtable, list.data);
		if (c->exactly_once)
			appendStringInfo(&sql,
							 "DELETE FROM pg_temp.firehose_stage s USING %s l "
							 "WHERE l.stream OPERATOR(pg_catalog.=) %s "
							 "AND l.record_ids OPERATOR(pg_catalog.@>) s.firehose_rid;",
							 c->qledger, c->ledger_literal);
		if (c->upsert)
			appendStringInfo(&sql,
							 "INSERT INTO %s (%s) SELECT DISTINCT ON (%s) %s FROM pg_temp.firehose_stage "
							 "ORDER BY %s, firehose_rid DESC ON CONFLICT (%s) DO %s%s;",
							 c->qtable, list.data, keys.data, list.data,
							 keys.data, keys.data, set.len ? "UPDATE SET " : "NOTHING", set.data);
		else
			appendStringInfo(&sql, "INSERT INTO %s (%s) SELECT %s FROM pg_temp.firehose_stage;",
							 c->qtable, list.data, list.data);
	}
	pfree(c->load_sql ? c->load_sql : palloc(1));
	c->load_sql = sql.data;
	c->cols = cols;
	c->ncols = n;
	c->epoch = epoch;
	MemoryContextSwitchTo(old);
	return true;
}

/* ---------- records as COPY text ---------- */

static void
append_copy_text(StringInfo out, const char *s, int len)
{
	const char *end = s + len;
	const char *start = s;

	for (; s < end; s++)
	{
		char		e = 0;

		switch (*s)
		{
			case '\\':
				e = '\\';
				break;
			case '\n':
				e = 'n';
				break;
			case '\r':
				e = 'r';
				break;
			case '\t':
				e = 't';
				break;
			default:
				continue;
		}
		appendBinaryStringInfo(out, start, s - start);
		appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, e);
		start = s + 1;
	}
	appendBinaryStringInfo(out, start, end - start);
}

/* the value v (NULL: missing) as COPY text of a column (json: JSON text) */
static void
append_value(StringInfo out, JsonbValue *v, bool json, StringInfo scratch)
{
	char	   *s;

	if (v == NULL || v->type == jbvNull)
	{
		appendStringInfoString(out, "\\N");
		return;
	}
	switch (v->type)
	{
		case jbvString:
			if (!json)
			{
				append_copy_text(out, v->val.string.val, v->val.string.len);
				return;
			}
			resetStringInfo(scratch);
			escape_json(scratch, pnstrdup(v->val.string.val, v->val.string.len));
			append_copy_text(out, scratch->data, scratch->len);
			return;
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out,
													NumericGetDatum(v->val.numeric)));
			appendStringInfoString(out, s);
			pfree(s);
			return;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			return;
		case jbvBinary:
			s = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
			append_copy_text(out, s, strlen(s));
			pfree(s);
			return;
		default:
			appendStringInfoString(out, "\\N");
			return;
	}
}

/* the value at col's path in the record's object, or NULL */
static JsonbValue *
find_value(JsonbContainer *root, const PgColumn *col)
{
	JsonbValue *v = NULL;
	JsonbContainer *cont = root;

	for (int d = 0; d < col->depth; d++)
	{
		if (cont == NULL || !JsonContainerIsObject(cont))
			return NULL;
		v = getKeyJsonValueFromContainer(cont, col->path[d], strlen(col->path[d]), NULL);
		if (v == NULL)
			return NULL;
		cont = v->type == jbvBinary ? v->val.binary.data : NULL;
	}
	return v;
}

/*
 * Record r's line of COPY text (with its ordinal first when ord >= 0), or
 * false when it is no JSON object (nothing appended).
 */
static bool
append_record(PgConfig *c, const FhRecord *r, int64 ord, StringInfo out, StringInfo scratch)
{
	static MemoryContext rec_cxt = NULL;
	Jsonb	   *j = NULL;
	int			len = VARSIZE_ANY_EXHDR(r->data);
	MemoryContext cxt;
	bool		ok = true;
	char	   *error;

	/* what reading one record allocates is freed after it */
	if (rec_cxt == NULL)
		rec_cxt = AllocSetContextCreate(TopMemoryContext, "firehose postgres record",
										ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(rec_cxt);
	cxt = MemoryContextSwitchTo(rec_cxt);

	/* a malformed record fails alone */
	j = fh_jsonb_parse(pnstrdup(VARDATA_ANY(r->data), len), &error);
	if (j == NULL || !JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		ok = false;
	else
	{
		if (ord >= 0)
			appendStringInfo(out, INT64_FORMAT "\t", ord);
		for (int i = 0; i < c->ncols; i++)
		{
			if (i > 0)
				appendStringInfoChar(out, '\t');
			append_value(out, find_value(&j->root, &c->cols[i]), c->cols[i].json, scratch);
		}
		appendStringInfoChar(out, '\n');
	}
	MemoryContextSwitchTo(cxt);
	return ok;
}

/* ---------- steps ---------- */

typedef enum PgPhase
{
	PG_LOAD,					/* load the part (commit) */
	PG_PROBE					/* load a window and roll back */
} PgPhase;

typedef struct PgPartState
{
	PgPhase		phase;
	FhPgRequest pg;
	StringInfoData scratch;
	PgConfig   *config;
	FhPartView *part;
	int			next;			/* the next record of [next, end) to COPY */
	int			end;
	int		   *sent;			/* the record of each COPY line */
	int			nsent;
	int			copy_stmt;		/* result index of the COPY */
	bool		for_epoch;		/* built with columns of pg.epoch */
	/* bisection: windows [lo, hi) of records still to probe */
	int		   *lo;
	int		   *hi;
	int			nwin;
	bool		found;			/* the probes found a bad record */
} PgPartState;

static PgPartState *
part_state(FhPartView *part)
{
	PgPartState *st = part->state;

	if (st == NULL)
	{
		st = MemoryContextAllocZero(part->cxt, sizeof(PgPartState));
		st->sent = MemoryContextAlloc(part->cxt, sizeof(int) * Max(1, part->nrecords));
		st->lo = MemoryContextAlloc(part->cxt, sizeof(int) * (2 * 32 + 2 + part->nrecords));
		st->hi = MemoryContextAlloc(part->cxt, sizeof(int) * (2 * 32 + 2 + part->nrecords));
		part->state = st;
	}
	return st;
}

/* is a record of [lo, hi) still to be loaded? */
static bool
any_pending(FhPartView *part, int lo, int hi)
{
	for (int i = lo; i < hi; i++)
		if (fh_view_pending(part, i))
			return true;
	return false;
}

/*
 * FhPgRequest.copy_more: the COPY text of the next pending records of the
 * step's range, about COPY_PIECE_SIZE bytes, made while the connection
 * sends the previous piece; a record that is no JSON object fails alone.
 * Runs in the part's memory context.
 */
static bool
pg_copy_more(void *arg, int k, StringInfo out)
{
	PgPartState *st = arg;
	PgConfig   *c = st->config;
	FhPartView *part = st->part;

	while (st->next < st->end && out->len < COPY_PIECE_SIZE)
	{
		int			i = st->next++;

		if (!fh_view_pending(part, i))
			continue;
		if (!append_record(c, &part->records[i],
						   c->upsert || c->exactly_once ? part->records[i].id : -1,
						   out, &st->scratch))
		{
			fh_view_fail(part, i, "Postgres.InvalidRecord",
						 pstrdup("The record is not a JSON object."));
			continue;
		}
		st->sent[st->nsent++] = i;
	}
	return st->next < st->end;
}

static void
pg_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *verdict)
{
	PgConfig   *c = config;
	PgPartState *st = part_state(part);
	StringInfoData sql;
	int			stmt = 1;		/* BEGIN is 0 */

	if (st->scratch.data == NULL)
		initStringInfo(&st->scratch);
	st->config = c;
	st->part = part;
	st->nsent = 0;
	memset(&st->pg, 0, sizeof(st->pg));
	st->pg.key = c->stream;
	st->pg.keywords = c->conn.keywords;
	st->pg.values = c->conn.values;
	st->pg.conn_signature = c->conn.signature;
	st->pg.init_sql = c->init_sql;
	req->pg = &st->pg;
	req->url = c->conn.target;
	st->for_epoch = false;

	if (c->epoch == 0)
	{
		/* the table's columns first */
		st->pg.force_init = true;
		return;
	}
	st->pg.epoch = c->epoch;
	st->for_epoch = true;
	if (st->phase == PG_PROBE)
	{
		/* the window on top; windows without pending records are done */
		while (st->nwin > 0 && !any_pending(part, st->lo[st->nwin - 1], st->hi[st->nwin - 1]))
			st->nwin--;
		if (st->nwin == 0)
			st->phase = PG_LOAD;
	}
	if (st->phase == PG_PROBE)
	{
		st->next = st->lo[st->nwin - 1];
		st->end = st->hi[st->nwin - 1];
	}
	else
	{
		st->next = 0;
		st->end = part->nrecords;
	}
	if (!any_pending(part, st->next, st->end))
	{
		/* every record failed alone: nothing left to load */
		req->pg = NULL;
		req->url = NULL;
		fh_verdict_set(verdict, FH_OUTCOME_OK, NULL, NULL);
		return;
	}

	initStringInfo(&sql);
	appendStringInfoString(&sql, "BEGIN;");
	if (st->phase == PG_PROBE)
	{
		/* deferred constraints are checked in the probe, which never commits */
		appendStringInfoString(&sql, "SET CONSTRAINTS ALL IMMEDIATE;");
		stmt++;
	}
	else if (c->exactly_once)
	{
		appendStringInfo(&sql, "SELECT pg_catalog.pg_advisory_xact_lock(" INT64_FORMAT ");",
						 c->lock_key);
		stmt++;
	}
	/* the COPY is load_sql's first statement, or its third when staged */
	st->copy_stmt = stmt + (c->upsert || c->exactly_once ? 2 : 0);
	appendStringInfoString(&sql, c->load_sql);
	if (c->exactly_once && st->phase == PG_LOAD)
	{
		/* the ids of what this transaction loads, from what is left staged */
		appendStringInfo(&sql,
						 "INSERT INTO %s (stream, record_ids, records, batch_xmax) SELECT %s, "
						 "pg_catalog.range_agg(pg_catalog.int8range(firehose_rid, firehose_rid OPERATOR(pg_catalog.+) 1)), "
						 "pg_catalog.count(*), " INT64_FORMAT " FROM pg_temp.firehose_stage "
						 "HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;",
						 c->qledger, c->ledger_literal, (int64) part->batch_xmax);

		/*
		 * The rows no retry can need: of batches whose records the source
		 * has recorded for good (see the file's header).  Strictly below:
		 * a batch cut at the same xmax as consumed's may see more.
		 */
		if (part->done_xmax > 0)
			appendStringInfo(&sql,
							 "DELETE FROM %s WHERE stream OPERATOR(pg_catalog.=) %s "
							 "AND batch_xmax OPERATOR(pg_catalog.<) " INT64_FORMAT ";",
							 c->qledger, c->ledger_literal, (int64) part->done_xmax);
	}
	appendStringInfoString(&sql, st->phase == PG_PROBE ? "ROLLBACK" : "COMMIT");
	st->pg.sql = sql.data;
	st->pg.copy_more = pg_copy_more;
	st->pg.copy_arg = st;
}

/* does SQLSTATE state say that the statement refused the data of a row? */
static bool
row_error(const char *state)
{
	return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
		strncmp(state, "44", 2) == 0;
}

/* may a later attempt succeed after error state (or a connection error)? */
static bool
transient_error(const char *state)
{
	static const char *const classes[] = {"08", "53", "57", "58", "40", NULL};

	if (state[0] == '\0' || strcmp(state, "25006") == 0 || strcmp(state, "55P03") == 0 ||
		strcmp(state, "55006") == 0)
		return true;
	for (int i = 0; classes[i]; i++)
		if (strncmp(state, classes[i], 2) == 0)
			return true;
	return false;
}

/* the line of COPY an error context names ("COPY t, line 3, column a: ..."), or 0 */
static long
copy_line(const char *context)
{
	const char *p = context ? strstr(context, ", line ") : NULL;

	return p ? strtol(p + 7, NULL, 10) : 0;
}

static char *
error_text(const FhPgResult *r)
{
	return r->message ? pstrdup(r->message) : pstrdup("(no message)");
}

static void
pg_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *verdict)
{
	PgConfig   *c = config;
	PgPartState *st = part_state(part);
	const FhPgResult *err = NULL;
	int			nmain = 0;
	int			errpos = -1;
	char	   *code;

	verdict->delay_ms = 0;
	for (int i = 0; i < resp->pg_nresults; i++)
	{
		const FhPgResult *r = &resp->pg_results[i];

		if (r->init)
		{
			if (!r->ok)
			{
				err = r;
				break;
			}
			if (r->ncols == 2 && !learn_columns(c, r, resp->pg_epoch, verdict))
				return;
			continue;
		}
		if (!r->ok)
		{
			err = r;
			errpos = nmain;
			break;
		}
		nmain++;
	}

	if (err == NULL && resp->pg_error && resp->pg_error_sqlstate[0] &&
		!transient_error(resp->pg_error_sqlstate))
	{
		/*
		 * The server refused the connection for good (28P01: a wrong
		 * password, 28000: no such role or pg_hba.conf refuses it, 3D000: no
		 * such database): retrying cannot help, nothing was sent.
		 */
		fh_verdict_set(verdict, FH_OUTCOME_FAIL,
					   psprintf("Postgres.%s", resp->pg_error_sqlstate),
					   pstrdup(resp->pg_error));
		return;
	}
	if (err == NULL && resp->pg_error)
	{
		/* no connection, or it broke: the outcome of a COMMIT sent is unknown */
		if (st->phase == PG_LOAD && st->for_epoch && !c->exactly_once && !resp->pg_stale &&
			resp->pg_nresults > 0)
			part->possible_duplicates += st->nsent;
		fh_verdict_set(verdict, FH_OUTCOME_RETRY, "Postgres.ConnectionFailed",
					   pstrdup(resp->pg_error));
		return;
	}
	if (err && (err->init || !st->for_epoch))
	{
		/* the ledger or the table's columns could not be read */
		code = psprintf("Postgres.%s", err->sqlstate);
		fh_verdict_set(verdict, transient_error(err->sqlstate) ? FH_OUTCOME_RETRY : FH_OUTCOME_FAIL,
					   code, error_text(err));
		return;
	}
	if (resp->pg_stale || !st->for_epoch)
	{
		/* built for a connection that is gone, or the columns were read */
		fh_verdict_set(verdict, FH_OUTCOME_NEXT, NULL, NULL);
		return;
	}

	if (err == NULL)
	{
		if (st->phase == PG_PROBE)
		{
			/* the window loads: its records are good */
			st->nwin--;
			if (st->nwin == 0)
			{
				if (!st->found)
				{
					fh_verdict_set(verdict, FH_OUTCOME_FAIL, "Postgres.BisectionFailed",
								   pstrdup("The part fails to load, but no record fails alone."));
					return;
				}
				st->phase = PG_LOAD;
			}
			fh_verdict_set(verdict, FH_OUTCOME_NEXT, NULL, NULL);
			return;
		}
		/* committed on the target, not yet recorded here (tests stop here) */
		fh_fault_point("pg_after_commit");
		for (int i = 0; i < st->nsent; i++)
			fh_view_deliver(part, st->sent[i]);
		fh_verdict_set(verdict, FH_OUTCOME_OK, NULL, NULL);
		return;
	}

	code = psprintf("Postgres.%s", err->sqlstate);
	if (row_error(err->sqlstate) && st->nsent > 0)
	{
		long		line = errpos == st->copy_stmt ? copy_line(err->context) : 0;

		if (line >= 1 && line <= st->nsent)
		{
			/* COPY names the record */
			fh_view_fail(part, st->sent[line - 1], code, error_text(err));
			st->found = true;
		}
		else if (st->phase == PG_LOAD)
		{
			/* bisect: probe each half */
			int			lo = st->sent[0];
			int			hi = st->sent[st->nsent - 1] + 1;

			if (st->nsent == 1)
				fh_view_fail(part, lo, code, error_text(err));
			else
			{
				int			mid = st->sent[st->nsent / 2];

				st->phase = PG_PROBE;
				st->found = false;
				st->nwin = 0;
				st->lo[st->nwin] = mid;
				st->hi[st->nwin++] = hi;
				st->lo[st->nwin] = lo;
				st->hi[st->nwin++] = mid;
			}
		}
		else
		{
			/* the probed window has a bad record: halve it */
			int			top = st->nwin - 1;

			if (st->nsent == 1)
			{
				fh_view_fail(part, st->sent[0], code, error_text(err));
				st->found = true;
				st->nwin--;
			}
			else
			{
				int			mid = st->sent[st->nsent / 2];
				int			hi = st->hi[top];

				st->hi[top] = hi;
				st->lo[top] = mid;
				st->lo[st->nwin] = st->sent[0];
				st->hi[st->nwin++] = mid;
			}
		}
		if (st->phase == PG_PROBE && st->nwin == 0)
			st->phase = PG_LOAD;
		fh_verdict_set(verdict, FH_OUTCOME_NEXT, NULL, NULL);
		return;
	}
	/* a load or probe failed as a whole */
	st->phase = PG_LOAD;
	st->nwin = 0;
	if (strcmp(err->sqlstate, "42703") == 0 || strcmp(err->sqlstate, "42P01") == 0)
		c->epoch = 0;			/* the table changed: read it again next time */
	fh_verdict_set(verdict, transient_error(err->sqlstate) ? FH_OUTCOME_RETRY : FH_OUTCOME_FAIL,
				   code, error_text(err));
}

/* the error record's fields of a record that failed: the target table */
static void
pg_error_fields(void *config, const FhPartView *part, int i, StringInfo out)
{
	PgConfig   *c = config;

	appendStringInfoString(out, ",\"table\":");
	escape_json(out, c->qtable);
}

const FhSink fh_sink_postgres = {
	.name = "postgres",
	.options = pg_options,
	.default_retry_duration_s = 3600,
	.error_output_type = "postgres-failed",
	.error_fields = pg_error_fields,
	.target = pg_target,
	.validate = pg_validate,
	.configure = pg_configure,
	.limits = pg_limits,
	.encode = pg_encode,
	.classify = pg_classify,
};
