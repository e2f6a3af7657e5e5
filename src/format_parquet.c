/*-------------------------------------------------------------------------
 *
 * format_parquet.c
 *	  Record format conversion of the S3 destination (option "format"):
 *	  JSON records into one Parquet file per part, with the columns of a
 *	  table or composite type of the database as the schema (Firehose's
 *	  Glue table) and OpenX JSON SerDe's way of reading records.
 *
 * A record is parsed by jsonb_in; each top-level key is matched to a
 * column (case-insensitively unless asked otherwise, after dots became
 * underscores if asked, or through column_to_json_key_mappings); each value
 * goes through the input function of its column's type, so a value fits a
 * column exactly when PostgreSQL would store it there: "12.345" into
 * numeric(5,2) is rounded, 70000 into int2 fails, "2024-1-5 3:04:05" is a
 * timestamp.  Timestamps without a zone are UTC, and numbers are epoch
 * seconds (or milliseconds from 1e11 on).  parquet_writer.c writes the
 * rows.
 *
 * A record that does not convert (not a JSON object, a value that does not
 * fit its column) fails alone: its row is abandoned in the writer and the
 * record marked failed in the part's view with FH_FORMAT_ERROR_CODE; the
 * S3 sink writes its error record under the error prefix.  Only data
 * errors (SQLSTATE class 22, and 54000 for a too large jsonb) are caught
 * per record; anything else fails the part as a bug would.
 *
 * Conversion runs in the worker's encode step, outside any transaction:
 * nothing here may read the catalog then (type names for messages are
 * kept from configure time; the input functions of the mapped types read
 * no catalog).  The schema is read when the stream's configuration is
 * loaded.  A schema
 * dropped since the stream was created does not stop the worker: every
 * record then fails conversion with the reason.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "mb/pg_wchar.h"
#include "funcapi.h"
#include "parser/parse_type.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "parquet_writer.h"

#define MB					(1024LL * 1024LL)
#define KB					1024LL
/* below this, a block_size is allowed with a WARNING (Firehose's minimum) */
#define MIN_BLOCK_SIZE		(64 * MB)
/* a number of at least this many is epoch milliseconds, not seconds */
#define EPOCH_MS_FROM		INT64CONST(100000000000)
/* an unconstrained numeric is written as DECIMAL(38, 9), as pg_parquet */
#define DEFAULT_PRECISION	38
#define DEFAULT_SCALE		9
/* days and microseconds between 1970-01-01 and 2000-01-01 */
#define UNIX_TO_PG_DAYS		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)

static const char *const format_types[] = {"parquet", NULL};
static const char *const parquet_codecs[] = {"snappy", "gzip", "zstd", "none", NULL};
static const char *const writer_versions[] = {"v1", "v2", NULL};

typedef struct FhFormatOptions
{
	char	   *schema;
	char	   *compression;
	int64		block_size;
	int64		page_size;
	bool		dictionary;
	char	   *writer_version;
	bool		case_insensitive;
	bool		dots_to_underscores;
	Jsonb	   *mappings;
} FhFormatOptions;

#define FO(member) FH_FIELD(FhFormatOptions, member)
const FhOptionDef fh_format_options[] = {
	{"type", FH_OPT_ENUM, 0, 0, NULL, format_types, .required = true},
	{"schema", FH_OPT_STRING, 0, 1000, NULL, .required = true, FO(schema)},
	{"compression", FH_OPT_ENUM, 0, 0, "\"snappy\"", parquet_codecs, FO(compression)},
	{"block_size", FH_OPT_BYTES, 64 * KB, 1024 * MB, "268435456", FO(block_size)},
	{"page_size", FH_OPT_BYTES, 64 * KB, 64 * MB, "1048576", FO(page_size)},
	{"enable_dictionary_compression", FH_OPT_BOOL, 0, 0, "true", FO(dictionary)},
	{"writer_version", FH_OPT_ENUM, 0, 0, "\"v1\"", writer_versions, FO(writer_version)},
	{"case_insensitive", FH_OPT_BOOL, 0, 0, "true", FO(case_insensitive)},
	{"convert_dots_in_json_keys_to_underscores", FH_OPT_BOOL, 0, 0, "false",
	FO(dots_to_underscores)},
	{"column_to_json_key_mappings", FH_OPT_STRMAP, 0, 0, NULL, FO(mappings)},
	{NULL}
};
#undef FO

/* one column of the schema */
typedef struct FormatColumn
{
	char	   *name;
	char	   *key;			/* the JSON key it takes */
	bool		mapped;			/* key comes from column_to_json_key_mappings */
	Oid			typid;			/* the (element) type, domains resolved */
	int32		typmod;
	char	   *typname;		/* for messages: encode() runs outside any
								 * transaction, with no catalog access */
	FmgrInfo	input;
	Oid			ioparam;
} FormatColumn;

struct FhFormat
{
	FhFormatOptions opts;
	char	   *broken;			/* why the schema cannot be used, or NULL */
	int			ncolumns;
	FhPqColumn *pq;
	FormatColumn *cols;
	FhPqOptions pqopts;
	pg_tz	   *utc;
};

/* ---------- the schema ---------- */

/*
 * The Parquet column of a PostgreSQL scalar type; false when it has none.
 * typmod applies to numeric (precision and scale).
 */
static bool
map_scalar(Oid typid, int32 *typmod, FhPqColumn *pq)
{
	switch (typid)
	{
		case BOOLOID:
			pq->type = FH_PQ_BOOLEAN;
			return true;
		case INT2OID:
			pq->type = FH_PQ_INT16;
			return true;
		case INT4OID:
			pq->type = FH_PQ_INT32;
			return true;
		case INT8OID:
			pq->type = FH_PQ_INT64;
			return true;
		case FLOAT4OID:
			pq->type = FH_PQ_FLOAT;
			return true;
		case FLOAT8OID:
			pq->type = FH_PQ_DOUBLE;
			return true;
		case NUMERICOID:
			pq->type = FH_PQ_DECIMAL;
			if (*typmod < (int32) VARHDRSZ)
			{
				pq->precision = DEFAULT_PRECISION;
				pq->scale = DEFAULT_SCALE;
				*typmod = ((DEFAULT_PRECISION << 16) | DEFAULT_SCALE) + VARHDRSZ;
				return true;
			}
			pq->precision = ((*typmod - VARHDRSZ) >> 16) & 0xffff;
			/* the scale is 11 bits, signed since PostgreSQL 15 */
			pq->scale = (((*typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;
			return pq->precision <= FH_PQ_MAX_DECIMAL_PRECISION &&
				pq->scale >= 0 && pq->scale <= pq->precision;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			pq->type = FH_PQ_STRING;
			return true;
		case JSONOID:
		case JSONBOID:
			pq->type = FH_PQ_JSON;
			return true;
		case BYTEAOID:
			pq->type = FH_PQ_BYTES;
			return true;
		case DATEOID:
			pq->type = FH_PQ_DATE;
			return true;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			pq->type = FH_PQ_TIMESTAMP;
			return true;
		case UUIDOID:
			pq->type = FH_PQ_UUID;
			return true;
	}
	return false;
}

#define MAPPABLE_TYPES "boolean, smallint, integer, bigint, real, double precision, " \
	"numeric (up to 38 digits), text, varchar, char, json, jsonb, bytea, date, " \
	"timestamp, timestamptz, uuid, and one-dimensional arrays of these"

/*
 * Read the columns of the table or composite type f->opts.schema into f.
 * Raises an ERROR that says what is wrong (the caller may catch it).
 */
static void
load_schema(FhFormat *f)
{
	List	   *names = stringToQualifiedNameList(f->opts.schema);
	Oid			typid;
	int32		typmod;
	TupleDesc	desc;
	int			n = 0;

	if (list_length(names) < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"schema\" of option \"format\" must be schema-qualified: \"%s\"",
						f->opts.schema),
				 errhint("Name a table or composite type with its schema, such as \"public.events\".")));
	parseTypeString(f->opts.schema, &typid, &typmod, true);
	if (!OidIsValid(typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("\"schema\" of option \"format\" names no table or composite type: \"%s\"",
						f->opts.schema),
				 errhint("Create the table or type first (CREATE TABLE or CREATE TYPE ... AS (...)); its columns are the Parquet schema.")));
	if (get_typtype(typid) != TYPTYPE_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"schema\" of option \"format\" is not a table or composite type: \"%s\"",
						f->opts.schema),
				 errdetail("It is the type %s.", format_type_be(typid)),
				 errhint("Name a table or a composite type; its columns are the Parquet schema.")));

	desc = lookup_rowtype_tupdesc_copy(typid, -1);
	f->pq = palloc0(sizeof(FhPqColumn) * Max(desc->natts, 1));
	f->cols = palloc0(sizeof(FormatColumn) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		FormatColumn *col = &f->cols[n];
		FhPqColumn *pq = &f->pq[n];
		int32		mod = att->atttypmod;
		Oid			base = getBaseTypeAndTypmod(att->atttypid, &mod);
		Oid			elem = get_element_type(base);
		Oid			typinput;

		if (att->attisdropped)
			continue;
		if (OidIsValid(elem) && get_typlen(base) == -1)
		{
			pq->list = true;
			base = getBaseTypeAndTypmod(elem, &mod);
		}
		if (!map_scalar(base, &mod, pq))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of \"%s\" has a type that Parquet conversion does not map: %s",
							NameStr(att->attname), f->opts.schema,
							format_type_with_typemod(att->atttypid, att->atttypmod)),
					 errdetail("The types mapped are " MAPPABLE_TYPES "."),
					 errhint("Give the stream a composite type (CREATE TYPE ... AS (...)) with the columns to write.")));
		col->name = pstrdup(NameStr(att->attname));
		col->key = col->name;
		col->typid = base;
		col->typmod = mod;
		col->typname = format_type_with_typemod(base, mod);
		getTypeInputInfo(base, &typinput, &col->ioparam);
		fmgr_info(typinput, &col->input);
		pq->name = col->name;
		pq->field_id = att->attnum;
		n++;
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"schema\" of option \"format\" has no columns: \"%s\"", f->opts.schema)));
	f->ncolumns = n;

	/* column_to_json_key_mappings: {"column": "json key"} */
	if (f->opts.mappings)
	{
		JsonbIterator *it = JsonbIteratorInit(&f->opts.mappings->root);
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *column = NULL;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				column = pnstrdup(kv.val.string.val, kv.val.string.len);
			else if (tok == WJB_VALUE)
			{
				int			c;

				for (c = 0; c < n; c++)
					if (strcmp(f->cols[c].name, column) == 0)
						break;
				if (c == n)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("\"column_to_json_key_mappings\" of option \"format\" names no column of \"%s\": \"%s\"",
									f->opts.schema, column),
							 errhint("The keys are column names, the values JSON keys.")));
				f->cols[c].key = pnstrdup(kv.val.string.val, kv.val.string.len);
				f->cols[c].mapped = true;
			}
		}
	}
}

static void
load_options(FhFormat *f, Jsonb *format)
{
	f->opts.case_insensitive = true;
	fh_options_load(fh_format_options, format, &f->opts);
}

/* the checks of option "format" once its keys are typed */
static void
format_validate(Jsonb *format)
{
	FhFormat	f;

	memset(&f, 0, sizeof(f));
	load_options(&f, format);
	load_schema(&f);
	if (f.opts.block_size < MIN_BLOCK_SIZE)
		ereport(WARNING,
				(errmsg("\"block_size\" of option \"format\" is below Firehose's minimum of 64 MiB"),
				 errdetail("Row groups of " INT64_FORMAT " bytes are allowed for low volume streams; readers do better with large ones.",
						   f.opts.block_size)));
}

/* option "format" as a table of its own, for fh_options_normalize_sink */
static const FhSink format_table = {
	.name = "s3 format",
	.options = fh_format_options,
	.validate = format_validate,
};

/*
 * fh_format_normalize
 *		Check and normalize option "format" of the S3 destination:
 *		{"type": "parquet", "schema": "schema.table", ...}.
 */
Jsonb *
fh_format_normalize(Jsonb *format)
{
	JsonbIterator *it = JsonbIteratorInit(&format->root);
	JsonbValue	kv;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		const FhOptionDef *d;

		if (tok != WJB_KEY)
			continue;
		for (d = fh_format_options; d->name; d++)
			if (strlen(d->name) == kv.val.string.len &&
				memcmp(d->name, kv.val.string.val, kv.val.string.len) == 0)
				break;
		if (d->name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%.*s\" in option \"format\"",
							kv.val.string.len, kv.val.string.val),
					 errhint("\"format\" takes type, schema, compression, block_size, page_size, enable_dictionary_compression, writer_version, case_insensitive, convert_dots_in_json_keys_to_underscores and column_to_json_key_mappings.")));
	}
	/* the table's own message would name a destination "s3 format" */
	if (fh_jsonb_get(format, "type") == NULL || fh_jsonb_get(format, "schema") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"format\" needs \"type\" and \"schema\""),
				 errhint("For example {\"type\": \"parquet\", \"schema\": \"public.events\"}, the schema being a table or composite type.")));
	return fh_options_normalize_sink(&format_table, NULL, format, false);
}

/*
 * fh_format_configure
 *		The conversion of normalized option "format", in
 *		CurrentMemoryContext.  Never raises an ERROR for the schema: a
 *		schema gone since the stream was made fails every record instead.
 */
FhFormat *
fh_format_configure(Jsonb *format)
{
	FhFormat   *f = palloc0(sizeof(FhFormat));
	MemoryContext cxt = CurrentMemoryContext;

	load_options(f, format);
	PG_TRY();
	{
		load_schema(f);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		f->broken = psprintf("The schema cannot be used: %s", e->message);
		f->ncolumns = 0;
	}
	PG_END_TRY();

	fh_pq_options_default(&f->pqopts);
	f->pqopts.codec = strcmp(f->opts.compression, "gzip") == 0 ? FH_PQ_GZIP :
		strcmp(f->opts.compression, "zstd") == 0 ? FH_PQ_ZSTD :
		strcmp(f->opts.compression, "none") == 0 ? FH_PQ_UNCOMPRESSED : FH_PQ_SNAPPY;
	f->pqopts.block_size = f->opts.block_size;
	f->pqopts.page_size = f->opts.page_size;
	f->pqopts.dictionary = f->opts.dictionary;
	f->pqopts.writer_version = strcmp(f->opts.writer_version, "v2") == 0 ? 2 : 1;
	f->pqopts.created_by = "firehose " FH_VERSION;
	f->utc = pg_tzset("UTC");
	return f;
}

/* the table of the schema, for error records: schema and name */
void
fh_format_table(FhFormat *f, char **schema, char **table)
{
	List	   *names = stringToQualifiedNameList(f->opts.schema);

	*schema = strVal(list_nth(names, list_length(names) - 2));
	*table = strVal(llast(names));
}

/* ---------- values ---------- */

/* a value that does not fit its column: the record fails */
#define value_error(col, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg(__VA_ARGS__)))

/* a scalar as text, for a type's input function; NULL for an array/object */
static char *
scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return v->val.boolean ? "true" : "false";
		default:
			return NULL;
	}
}

/* any value as JSON text */
static char *
json_text(JsonbValue *v)
{
	Jsonb	   *j = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

/* a value the writer refused (out of its column's range) */
static void
check_pq(FhPqWriter *w, int rc, FormatColumn *col)
{
	if (rc != 0)
		value_error(col, "%s", fh_pq_error(w));
}

/* the microseconds since 1970 of a timestamp value */
static int64
timestamp_value(FhFormat *f, FormatColumn *col, JsonbValue *v, const char *text)
{
	Timestamp	ts;
	bool		digits = v->type == jbvString && v->val.string.len > 0;

	/* a string of digits is an epoch number too */
	for (int i = 0; digits && i < v->val.string.len; i++)
		digits = isdigit((unsigned char) v->val.string.val[i]) ||
			(i == 0 && v->val.string.val[i] == '-' && v->val.string.len > 1);
	if (v->type == jbvNumeric || digits)
	{
		Datum		n = DirectFunctionCall3(numeric_in, CStringGetDatum(text),
										   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		Datum		limit = NumericGetDatum(int64_to_numeric(EPOCH_MS_FROM));
		Datum		absn = DirectFunctionCall1(numeric_abs, n);
		int64		scale = DatumGetBool(DirectFunctionCall2(numeric_ge, absn, limit)) ?
			1000 : USECS_PER_SEC;
		int64		us;

		us = DatumGetInt64(DirectFunctionCall1(numeric_int8,
											   DirectFunctionCall2(numeric_mul, n,
																   NumericGetDatum(int64_to_numeric(scale)))));
		if (pg_sub_s64_overflow(us, UNIX_TO_PG_DAYS * USECS_PER_DAY, &ts))
			value_error(col, "timestamp out of range: \"%s\"", text);
	}
	else if (v->type == jbvString)
	{
		/* a time without a zone is UTC: the zone the input function reads */
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	}
	else
		value_error(col, "a %s does not fit a timestamp", v->type == jbvBool ? "boolean" : "JSON value");
	if (!IS_VALID_TIMESTAMP(ts))
		value_error(col, "timestamp out of range: \"%s\"", text);
	return ts + UNIX_TO_PG_DAYS * USECS_PER_DAY;
}

/* write scalar value v (not null) of column ci */
static void
put_scalar(FhFormat *f, FhPqWriter *w, int ci, JsonbValue *v)
{
	FormatColumn *col = &f->cols[ci];
	FhPqType	type = f->pq[ci].type;
	char	   *text = scalar_text(v);
	Datum		d;

	if (type == FH_PQ_JSON)
	{
		char	   *j = json_text(v);

		check_pq(w, fh_pq_bytes(w, ci, j, strlen(j)), col);
		return;
	}
	if (text == NULL)
	{
		/* an object or array: only string columns take it, as its text */
		if (type != FH_PQ_STRING)
			value_error(col, "a JSON %s does not fit type %s",
						JsonContainerIsArray(v->val.binary.data) ? "array" : "object",
						col->typname);
		text = json_text(v);
	}
	if (type == FH_PQ_TIMESTAMP)
	{
		check_pq(w, fh_pq_int(w, ci, timestamp_value(f, col, v, text)), col);
		return;
	}
	if (type == FH_PQ_STRING && col->typid == TEXTOID)
	{
		check_pq(w, fh_pq_bytes(w, ci, text, strlen(text)), col);
		return;
	}
	d = InputFunctionCall(&col->input, text, col->ioparam, col->typmod);
	switch (type)
	{
		case FH_PQ_BOOLEAN:
			check_pq(w, fh_pq_bool(w, ci, DatumGetBool(d)), col);
			break;
		case FH_PQ_INT16:
			check_pq(w, fh_pq_int(w, ci, DatumGetInt16(d)), col);
			break;
		case FH_PQ_INT32:
			check_pq(w, fh_pq_int(w, ci, DatumGetInt32(d)), col);
			break;
		case FH_PQ_INT64:
			check_pq(w, fh_pq_int(w, ci, DatumGetInt64(d)), col);
			break;
		case FH_PQ_FLOAT:
			check_pq(w, fh_pq_double(w, ci, DatumGetFloat4(d)), col);
			break;
		case FH_PQ_DOUBLE:
			check_pq(w, fh_pq_double(w, ci, DatumGetFloat8(d)), col);
			break;
		case FH_PQ_DECIMAL:
			/* rounded to the column's scale by numeric_in already */
			check_pq(w, fh_pq_decimal(w, ci,
									  DatumGetCString(DirectFunctionCall1(numeric_out, d))), col);
			break;
		case FH_PQ_STRING:
		case FH_PQ_BYTES:
			check_pq(w, fh_pq_bytes(w, ci, VARDATA_ANY(DatumGetPointer(d)),
									VARSIZE_ANY_EXHDR(DatumGetPointer(d))), col);
			break;
		case FH_PQ_DATE:
			if (DATE_NOT_FINITE(DatumGetDateADT(d)))
				value_error(col, "date out of range: \"%s\"", text);
			check_pq(w, fh_pq_int(w, ci, (int64) DatumGetDateADT(d) + UNIX_TO_PG_DAYS), col);
			break;
		case FH_PQ_UUID:
			check_pq(w, fh_pq_bytes(w, ci, DatumGetUUIDP(d)->data, UUID_LEN), col);
			break;
		case FH_PQ_JSON:
		case FH_PQ_TIMESTAMP:
			break;				/* above */
	}
}

/* write value v of column ci: NULL, a scalar, or a list */
static void
put_value(FhFormat *f, FhPqWriter *w, int ci, JsonbValue *v)
{
	FormatColumn *col = &f->cols[ci];
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (v == NULL || v->type == jbvNull)
	{
		check_pq(w, fh_pq_null(w, ci), col);
		return;
	}
	if (!f->pq[ci].list)
	{
		put_scalar(f, w, ci, v);
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		value_error(col, "an array column takes a JSON array, not %s", json_text(v));
	check_pq(w, fh_pq_list_begin(w, ci), col);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type == jbvNull)
			check_pq(w, fh_pq_null(w, ci), col);
		else
			put_scalar(f, w, ci, &e);
	}
	check_pq(w, fh_pq_list_end(w, ci), col);
}

/* does JSON key (len bytes) name column col? */
static bool
key_matches(FhFormat *f, FormatColumn *col, const char *key, int len, const char *converted)
{
	const char *k = col->mapped ? key : converted;

	if ((int) strlen(col->key) != len)
		return false;
	if (f->opts.case_insensitive)
		return pg_strncasecmp(col->key, k, len) == 0;
	return memcmp(col->key, k, len) == 0;
}

/*
 * Convert one record into the writer's current row; ERROR if it does not,
 * with *column the column whose value failed (NULL: the record itself).
 */
static void
convert_record(FhFormat *f, FhPqWriter *w, const FhRecord *r, JsonbValue **values,
			   const char *volatile *column)
{
	const char *data = VARDATA_ANY(r->data);
	int			len = VARSIZE_ANY_EXHDR(r->data);
	Jsonb	   *j;
	JsonbIterator *it;
	JsonbValue	kv;
	JsonbIteratorToken tok;
	int			current = -1;

	if (f->broken)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", f->broken)));
	/* jsonb_in reads a C string: a NUL would hide what follows it */
	if (memchr(data, '\0', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("the record is not JSON: it has a NUL byte")));
	pg_verify_mbstr(GetDatabaseEncoding(), data, len, false);
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(data, len))));
	if (!JB_ROOT_IS_OBJECT(j))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the record is not a JSON object")));

	memset(values, 0, sizeof(JsonbValue *) * f->ncolumns);
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *converted = kv.val.string.val;

			if (f->opts.dots_to_underscores &&
				memchr(kv.val.string.val, '.', kv.val.string.len))
			{
				converted = pnstrdup(kv.val.string.val, kv.val.string.len);
				for (char *p = converted; *p; p++)
					if (*p == '.')
						*p = '_';
			}
			current = -1;
			for (int c = 0; c < f->ncolumns; c++)
				if (key_matches(f, &f->cols[c], kv.val.string.val, kv.val.string.len,
								converted))
				{
					current = c;
					break;
				}
		}
		else if (tok == WJB_VALUE && current >= 0)
		{
			values[current] = palloc(sizeof(JsonbValue));
			*values[current] = kv;
		}
	}
	for (int c = 0; c < f->ncolumns; c++)
	{
		*column = f->cols[c].name;
		put_value(f, w, c, values[c]);
	}
}

/* ---------- the file ---------- */

/* the writer's output, into a StringInfo, refused before it would ERROR */
static int
write_to_string(void *arg, const void *data, size_t len)
{
	StringInfo	out = arg;

	if ((size_t) out->len + len >= MaxAllocSize - 1)
		return -1;
	appendBinaryStringInfo(out, data, len);
	return 0;
}

static void
free_writer(void *arg)
{
	FhPqWriter **w = arg;

	if (*w)
		fh_pq_writer_free(*w);
	*w = NULL;
}

/*
 * fh_format_convert
 *		The Parquet file of part's records into out (nothing when no record
 *		converts).  A record that does not convert is failed in the view with
 *		FH_FORMAT_ERROR_CODE.  Returns the number of rows written.  ERROR
 *		when the file cannot be made at all (too large, out of memory).
 */
int
fh_format_convert(FhFormat *f, FhPartView *part, StringInfo out)
{
	FhPqWriter **w = palloc0(sizeof(FhPqWriter *));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext rowcxt;
	JsonbValue **values = palloc(sizeof(JsonbValue *) * Max(f->ncolumns, 1));
	char		err[FH_PQ_ERROR_LEN];
	pg_tz	   *saved_tz = session_timezone;
	int64		rows;

	if (f->broken)
	{
		for (int i = 0; i < part->nrecords; i++)
			fh_view_fail(part, i, FH_FORMAT_ERROR_CODE, f->broken);
		return 0;
	}
	initStringInfo(out);
	*w = fh_pq_writer_create(f->pq, f->ncolumns, &f->pqopts, write_to_string, out, err);
	if (*w == NULL)
		elog(ERROR, "could not start a Parquet file: %s", err);
	cb->func = free_writer;
	cb->arg = w;
	MemoryContextRegisterResetCallback(outer, cb);

	rowcxt = AllocSetContextCreate(outer, "firehose parquet row", ALLOCSET_DEFAULT_SIZES);
	/* timestamptz_in reads a time without a zone in the session's zone */
	session_timezone = f->utc;
	PG_TRY();
	{
		for (int i = 0; i < part->nrecords; i++)
		{
			bool		failed = false;
			const char *volatile column = NULL;

			MemoryContextReset(rowcxt);
			MemoryContextSwitchTo(rowcxt);
			PG_TRY();
			{
				convert_record(f, *w, &part->records[i], values, &column);
			}
			PG_CATCH();
			{
				ErrorData  *e;

				MemoryContextSwitchTo(outer);
				e = CopyErrorData();
				if (ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
					e->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
					PG_RE_THROW();
				FlushErrorState();
				fh_pq_abandon_row(*w);
				fh_view_fail(part, i, FH_FORMAT_ERROR_CODE,
							 column ?
							 psprintf("The record could not be converted to Parquet: column \"%s\": %s",
									  column, e->message) :
							 psprintf("The record could not be converted to Parquet: %s",
									  e->message));
				failed = true;
			}
			PG_END_TRY();
			MemoryContextSwitchTo(outer);
			if (!failed && fh_pq_end_row(*w) != 0)
				elog(ERROR, "could not write a Parquet row: %s", fh_pq_error(*w));
		}
	}
	PG_FINALLY();
	{
		session_timezone = saved_tz;
	}
	PG_END_TRY();
	MemoryContextDelete(rowcxt);

	rows = fh_pq_rows(*w);
	if (rows > 0 && fh_pq_finish(*w) != 0)
		elog(ERROR, "could not finish a Parquet file: %s", fh_pq_error(*w));
	free_writer(w);
	if (rows == 0)
		resetStringInfo(out);
	return (int) rows;
}
