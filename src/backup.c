/*-------------------------------------------------------------------------
 *
 * backup.c
 *	  The backup store of a destination (option "backup"): a second sink
 *	  instance, S3, that the worker sends a part to once the destination
 *	  has its verdict: the error records of the records that failed
 *	  (Firehose's error record format, firehose.md 3.8, with the
 *	  destination's own fields), and with mode "all" a copy of every record.
 *
 * The store is configured like any destination, from the options nested
 * in "backup"; it sees its records through a view of its own, as the
 * destination does, and knows nothing of the destination it backs up.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

static const char *const backup_modes[] = {"failed", "all", NULL};

/*
 * The keys of option "backup" of the destinations: the options of an S3
 * store nested in it.  (fh_backup_normalize checks them.)
 */
const FhOptionDef fh_backup_options[] = {
	{"mode", FH_OPT_ENUM, 0, 0, "\"failed\"", backup_modes},
	{"s3", FH_OPT_OBJECT, .nested = fh_s3_options, .required = true},
	{NULL}
};

/*
 * fh_backup_normalize
 *		Check and normalize the option "backup":
 *		{"mode": "failed" | "all", "s3": {<options of destination s3>}}.
 */
Jsonb *
fh_backup_normalize(Jsonb *backup)
{
	JsonbIterator *it;
	JsonbValue	kv;
	JsonbIteratorToken tok;
	JsonbValue *s3;
	char	   *mode = "failed";
	StringInfoData out;
	Jsonb	   *norm;

	it = JsonbIteratorInit(&backup->root);
	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY &&
			!(kv.val.string.len == 4 && memcmp(kv.val.string.val, "mode", 4) == 0) &&
			!(kv.val.string.len == 2 && memcmp(kv.val.string.val, "s3", 2) == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%.*s\" in option \"backup\"", kv.val.string.len, kv.val.string.val),
					 errhint("\"backup\" takes \"mode\" (\"failed\" or \"all\") and \"s3\" (the options of an s3 destination).")));
	}
	if (fh_jsonb_get(backup, "mode"))
	{
		JsonbValue *m = fh_jsonb_get(backup, "mode");
		int			i;

		mode = m->type == jbvString ? pnstrdup(m->val.string.val, m->val.string.len) : "";
		for (i = 0; backup_modes[i]; i++)
			if (strcmp(backup_modes[i], mode) == 0)
				break;
		if (backup_modes[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"mode\" of option \"backup\" must be \"failed\" or \"all\""),
					 errhint("\"failed\" keeps the records that could not be delivered, \"all\" every record.")));
	}
	s3 = fh_jsonb_get(backup, "s3");
	if (s3 == NULL || s3->type != jbvBinary || !JsonContainerIsObject(s3->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"backup\" needs \"s3\": an object of S3 options"),
				 errhint("For example {\"mode\": \"failed\", \"s3\": {\"bucket\": \"my-bucket\", \"region\": \"eu-west-1\", ...}}.")));
	norm = fh_options_normalize_sink(&fh_sink_s3, NULL, JsonbValueToJsonb(s3), false);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"mode\": \"%s\", \"s3\": %s}", mode,
					 JsonbToCString(NULL, &norm->root, VARSIZE(norm)));
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * fh_backup_configure
 *		The backup store of normalized option "backup", in
 *		CurrentMemoryContext.
 */
FhBackup *
fh_backup_configure(Jsonb *backup, const char *stream, int32 version)
{
	FhBackup   *b = palloc0(sizeof(FhBackup));
	JsonbValue *s3 = fh_jsonb_get(backup, "s3");
	char	   *mode = "failed";

	fh_jsonb_get_text(backup, "mode", &mode);
	b->all = strcmp(mode, "all") == 0;
	b->sink = &fh_sink_s3;
	b->config = b->sink->configure(JsonbValueToJsonb(s3), stream, version);
	return b;
}
