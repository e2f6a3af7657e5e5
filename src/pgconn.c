/*-------------------------------------------------------------------------
 *
 * pgconn.c
 *	  The worker's libpq connections to PostgreSQL destinations, driven
 *	  asynchronously from the same wait as the curl requests (transport.c).
 *
 * Each stream has at most one connection (keyed by the stream's name),
 * made again when it broke or its parameters changed, and used by one step
 * at a time: steps of further parts of the stream wait their turn in the
 * connection's queue.  Nothing here blocks on the network but name
 * resolution, which libpq would do the same way: connecting goes through
 * PQconnectStartParams/PQconnectPoll, a step's query through PQsendQuery,
 * its COPY data through non-blocking PQputCopyData, one piece each time
 * the socket takes more, and answers through PQconsumeInput/PQgetResult
 * when the socket is readable.  The transport adds the sockets to its
 * WaitEventSet (fh_pg_watches) and calls fh_pg_service when one is ready.
 *
 * The host passes firehose.allowed_destinations before any packet goes
 * out: it is resolved here and libpq is given the first allowed address
 * (hostaddr), so that neither a name nor a DNS answer reaches a refused
 * address.
 *
 * A connection's socket is counted in PostgreSQL's file descriptor budget
 * (AcquireExternalFD before it is made, ReleaseExternalFD after PQfinish),
 * as postgres_fdw does, so that fd.c closes relation files to make room for
 * it; when there is none the step fails as a connection failure, retried.
 *
 * A step ends with no transaction open: one that its statements left open
 * (an error inside BEGIN ... COMMIT) is rolled back before the step is
 * answered, so the next step starts clean and no lock is held meanwhile.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "libpq-fe.h"

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"

/* a connection nobody used for this long is closed */
#define IDLE_CLOSE_MS	(10 * 60 * 1000)

typedef enum ConnState
{
	CONN_NONE,					/* no connection */
	CONN_CONNECTING,
	CONN_IDLE,
	CONN_BUSY					/* a step runs */
} ConnState;

typedef enum StepPhase
{
	PHASE_INIT,					/* init_sql */
	PHASE_MAIN,					/* sql */
	PHASE_CLEANUP				/* the ROLLBACK of a transaction left open */
} StepPhase;

typedef struct Job
{
	FhPart	   *part;
	TimestampTz deadline;
} Job;

typedef struct PgConn
{
	char	   *key;
	char	   *signature;		/* of the parameters it was made with */
	PGconn	   *conn;
	bool		has_fd;			/* holds an AcquireExternalFD() */
	ConnState	state;
	PostgresPollingStatusType poll; /* CONNECTING: what it waits for */
	uint64		epoch;
	bool		fresh;			/* init_sql has not run on it yet */
	TimestampTz last_used;
	/* the step that runs, and the ones waiting */
	Job			job;
	List	   *queue;
	StepPhase	phase;
	bool		want_write;
	bool		in_copy;
	int			copy_next;		/* the number of the COPY in progress */
	StringInfoData piece;		/* its data not yet given to libpq */
	size_t		copy_off;
	bool		copy_last;		/* piece is its last */
} PgConn;

static MemoryContext PgContext = NULL;
static List *conns = NIL;
static List *finished = NIL;	/* parts whose step is answered */
static int	nrunning = 0;
static uint64 last_epoch = 0;
static bool watches_changed = true;

static void drive(PgConn *c);

/* the target's notices (e.g. of CREATE TABLE IF NOT EXISTS) are of no use */
static void
ignore_notice(void *arg, const char *message)
{
}

int
fh_pg_running(void)
{
	return nrunning;
}

static PgConn *
find_conn(const char *key)
{
	ListCell   *lc;
	PgConn	   *c;

	foreach(lc, conns)
	{
		c = lfirst(lc);
		if (strcmp(c->key, key) == 0)
			return c;
	}
	c = MemoryContextAllocZero(PgContext, sizeof(PgConn));
	c->key = MemoryContextStrdup(PgContext, key);
	c->state = CONN_NONE;
	{
		MemoryContext old = MemoryContextSwitchTo(PgContext);

		conns = lappend(conns, c);
		MemoryContextSwitchTo(old);
	}
	return c;
}

static void
close_conn(PgConn *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	if (c->has_fd)
		ReleaseExternalFD();
	c->has_fd = false;
	c->state = CONN_NONE;
	c->in_copy = false;
	watches_changed = true;
}

/* add one result to part's answer (in the part's memory) */
static FhPgResult *
add_result(FhPart *part)
{
	FhResponse *r = &part->response;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);

	if (r->pg_results == NULL)
		r->pg_results = palloc0(sizeof(FhPgResult) * 8);
	else if ((r->pg_nresults & (r->pg_nresults - 1)) == 0 && r->pg_nresults >= 8)
		r->pg_results = repalloc(r->pg_results, sizeof(FhPgResult) * r->pg_nresults * 2);
	MemoryContextSwitchTo(old);
	memset(&r->pg_results[r->pg_nresults], 0, sizeof(FhPgResult));
	return &r->pg_results[r->pg_nresults++];
}

static char *
part_strdup(FhPart *part, const char *s)
{
	return s ? MemoryContextStrdup(part->cxt, s) : NULL;
}

/* keep what the sink needs of res */
static void
keep_result(PgConn *c, PGresult *res)
{
	FhPart	   *part = c->job.part;
	FhPgResult *r = add_result(part);
	ExecStatusType st = PQresultStatus(res);

	r->init = c->phase == PHASE_INIT;
	r->ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY);
	if (!r->ok)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		strlcpy(r->sqlstate, state ? state : "", sizeof(r->sqlstate));
		r->message = part_strdup(part, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		if (r->message == NULL)
			r->message = part_strdup(part, PQresultErrorMessage(res));
		r->context = part_strdup(part, PQresultErrorField(res, PG_DIAG_CONTEXT));
	}
	r->cmd_tuples = part_strdup(part, PQcmdTuples(res));
	if (st == PGRES_TUPLES_OK)
	{
		r->nrows = PQntuples(res);
		r->ncols = PQnfields(res);
		r->values = MemoryContextAllocZero(part->cxt,
										   sizeof(char *) * Max(1, r->nrows * r->ncols));
		for (int i = 0; i < r->nrows; i++)
			for (int j = 0; j < r->ncols; j++)
				if (!PQgetisnull(res, i, j))
					r->values[i * r->ncols + j] = part_strdup(part, PQgetvalue(res, i, j));
	}
}

/* the step of c is answered: hand the part back, start the next step */
static void
finish_job(PgConn *c)
{
	FhPart	   *part = c->job.part;

	MemoryContext old = MemoryContextSwitchTo(PgContext);

	part->response.pg_epoch = c->epoch;
	part->in_flight = false;
	finished = lappend(finished, part);
	MemoryContextSwitchTo(old);
	c->job.part = NULL;
	c->last_used = GetCurrentTimestamp();
	c->in_copy = false;
	if (c->state == CONN_BUSY)
		c->state = CONN_IDLE;
	nrunning--;
	watches_changed = true;
}

/* the connection broke or could not be made: the step's answer says why */
static void
conn_failed(PgConn *c, const char *why)
{
	FhPart	   *part = c->job.part;
	const char *msg = why ? why : (c->conn ? PQerrorMessage(c->conn) : "out of memory");
	char	   *m = part_strdup(part, msg);
	size_t		len = strlen(m);

	/* libpq's messages end in a line feed */
	while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' '))
		m[--len] = '\0';
	part->response.pg_error = m[0] ? m : "connection lost";
	close_conn(c);
	finish_job(c);
}

/*
 * A connection that could not be made: when the server refused it (wrong
 * password, no such database, too many connections), libpq's message has
 * the server's error as PQERRORS_VERBOSE writes it, "... failed: FATAL:
 * 28P01: password authentication failed ...", followed by a LOCATION line.
 * libpq keeps no result of the refusal that PQresultErrorField could read,
 * so its SQLSTATE is taken from that text: the last error of the message
 * (with sslmode "prefer" libpq may have tried twice).  The step's answer
 * gets the SQLSTATE and the message of that attempt without it.
 */
static void
connect_failed(PgConn *c)
{
	FhPart	   *part = c->job.part;
	const char *msg = c->conn ? PQerrorMessage(c->conn) : NULL;
	const char *state = NULL;
	const char *line;
	const char *end;
	StringInfoData m;

	for (const char *p = msg ? strstr(msg, ":  ") : NULL; p; p = strstr(p + 1, ":  "))
	{
		const char *s = p + 3;
		int			n = 0;

		while (n < 5 && (isdigit((unsigned char) s[n]) || isupper((unsigned char) s[n])))
			n++;
		if (n == 5 && s[5] == ':' && s[6] == ' ')
			state = s;
	}
	if (state == NULL)
	{
		conn_failed(c, NULL);	/* no answer from the server */
		return;
	}
	line = state;
	while (line > msg && line[-1] != '\n')
		line--;
	end = strchr(state, '\n');
	if (end == NULL)
		end = state + strlen(state);
	initStringInfo(&m);
	appendBinaryStringInfo(&m, line, state - line);
	appendBinaryStringInfo(&m, state + 7, end - (state + 7));
	memcpy(part->response.pg_error_sqlstate, state, 5);
	part->response.pg_error_sqlstate[5] = '\0';
	conn_failed(c, m.data);
	pfree(m.data);
}

/*
 * The address to give libpq as hostaddr for the host of params (from the
 * sink: host, or hostaddr, and port), or NULL when
 * firehose.allowed_destinations refuses it (refused says what).
 */
static char *
allowed_address(const FhPgRequest *pg, char *refused, size_t size, char **err)
{
	const char *host = NULL;
	const char *hostaddr = NULL;
	const char *port = "5432";
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char	   *out = NULL;
	int			rc;

	*err = NULL;
	for (int i = 0; pg->keywords[i]; i++)
	{
		if (strcmp(pg->keywords[i], "host") == 0)
			host = pg->values[i];
		else if (strcmp(pg->keywords[i], "hostaddr") == 0)
			hostaddr = pg->values[i];
		else if (strcmp(pg->keywords[i], "port") == 0 && pg->values[i][0])
			port = pg->values[i];
	}
	if (hostaddr && hostaddr[0])
	{
		if (fh_netacl_allows_host(FH_ALLOWED_DESTINATIONS(), hostaddr))
			return pstrdup(hostaddr);
		strlcpy(refused, hostaddr, size);
		return NULL;
	}
	if (host == NULL || host[0] == '\0' ||
		!fh_netacl_allows_host(FH_ALLOWED_DESTINATIONS(), host))
	{
		strlcpy(refused, host && host[0] ? host : "a local socket", size);
		return NULL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
	{
		*err = psprintf("could not translate host name \"%s\" to address: %s",
						host, gai_strerror(rc));
		return NULL;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next)
	{
		char		buf[INET6_ADDRSTRLEN];
		const void *bytes;

		if (a->ai_family == AF_INET)
			bytes = &((struct sockaddr_in *) a->ai_addr)->sin_addr;
		else if (a->ai_family == AF_INET6)
			bytes = &((struct sockaddr_in6 *) a->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(a->ai_family, bytes, buf, sizeof(buf)) == NULL)
			continue;
		if (fh_netacl_allows_addr(FH_ALLOWED_DESTINATIONS(), a->ai_addr))
		{
			out = pstrdup(buf);
			break;
		}
		strlcpy(refused, buf, size);
	}
	freeaddrinfo(res);
	return out;
}

/* start connecting c for its job's parameters */
static void
start_connect(PgConn *c)
{
	FhPart	   *part = c->job.part;
	FhPgRequest *pg = part->request.pg;
	const char **kw;
	const char **vals;
	int			n = 0;
	char	   *addr;
	char	   *err;
	MemoryContext old = MemoryContextSwitchTo(part->cxt);

	addr = allowed_address(pg, part->response.refused, sizeof(part->response.refused), &err);
	if (addr == NULL)
	{
		MemoryContextSwitchTo(old);
		if (err)
			conn_failed(c, err);
		else
			finish_job(c);		/* nothing sent: the worker records the refusal */
		return;
	}
	while (pg->keywords[n])
		n++;
	kw = palloc(sizeof(char *) * (n + 2));
	vals = palloc(sizeof(char *) * (n + 2));
	for (int i = 0; i < n; i++)
	{
		kw[i] = pg->keywords[i];
		vals[i] = pg->values[i];
		if (strcmp(kw[i], "hostaddr") == 0)
			vals[i] = addr;
	}
	kw[n] = "hostaddr";
	vals[n] = addr;
	kw[n + 1] = NULL;
	vals[n + 1] = NULL;
	MemoryContextSwitchTo(old);

	c->signature = MemoryContextStrdup(PgContext, pg->conn_signature);
	/* fd.c closes relation files to make room, or says there is none */
	if (!AcquireExternalFD())
	{
		conn_failed(c, "no file descriptor was free for a connection: the worker's "
					"open files are at max_files_per_process or the server's "
					"open-file limit");
		return;
	}
	c->has_fd = true;
	c->conn = PQconnectStartParams(kw, vals, 0);
	if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD)
	{
		conn_failed(c, NULL);
		return;
	}
	PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
	/* the server's refusal with its SQLSTATE (connect_failed) */
	PQsetErrorVerbosity(c->conn, PQERRORS_VERBOSE);
	c->state = CONN_CONNECTING;
	c->poll = PGRES_POLLING_WRITING;
	watches_changed = true;
}

/* send what the job's step runs next on c, a connection ready for it */
static void
send_next(PgConn *c)
{
	FhPart	   *part = c->job.part;
	FhPgRequest *pg = part->request.pg;
	const char *sql = NULL;

	c->want_write = true;
	c->copy_next = 0;
	c->in_copy = false;
	if (c->phase == PHASE_INIT)
	{
		c->fresh = false;
		part->response.pg_init_ran = true;
		sql = pg->init_sql;
	}
	else if (c->phase == PHASE_MAIN)
	{
		if (pg->epoch != 0 && pg->epoch != c->epoch)
		{
			part->response.pg_stale = true;
			finish_job(c);
			return;
		}
		sql = pg->sql;
	}
	else
		sql = "ROLLBACK";
	if (sql == NULL)
	{
		/* nothing in this phase: on to the next, or done */
		if (c->phase == PHASE_INIT)
		{
			c->phase = PHASE_MAIN;
			send_next(c);
		}
		else
			finish_job(c);
		return;
	}
	if (!PQsendQuery(c->conn, sql))
		conn_failed(c, NULL);
}

/* begin the next waiting step on c, if c is free */
static void
begin_job(PgConn *c)
{
	FhPgRequest *pg;

	if (c->job.part != NULL || c->queue == NIL)
		return;
	c->job = *(Job *) linitial(c->queue);
	pfree(linitial(c->queue));
	c->queue = list_delete_first(c->queue);
	pg = c->job.part->request.pg;

	/* parameters changed, or it broke while idle: a new connection */
	if (c->state != CONN_NONE &&
		(strcmp(c->signature, pg->conn_signature) != 0 ||
		 PQstatus(c->conn) != CONNECTION_OK || !PQconsumeInput(c->conn) ||
		 PQtransactionStatus(c->conn) != PQTRANS_IDLE))
		close_conn(c);
	if (c->state == CONN_NONE)
	{
		start_connect(c);
		if (c->state == CONN_CONNECTING)
			drive(c);
		return;
	}
	c->state = CONN_BUSY;
	c->phase = (c->fresh || pg->force_init) ? PHASE_INIT : PHASE_MAIN;
	send_next(c);
	if (c->job.part)
		drive(c);
}

/*
 * Give libpq the COPY data of the statement in progress, made a piece at a
 * time by the sink, each piece once libpq sent the previous one; false
 * while more is to be given.
 */
static bool
feed_copy(PgConn *c)
{
	FhPgRequest *pg = c->job.part->request.pg;

	for (;;)
	{
		if (c->copy_off < (size_t) c->piece.len)
		{
			if (PQflush(c->conn) != 0)
				return false;	/* the socket takes no more now */
			if (PQputCopyData(c->conn, c->piece.data + c->copy_off,
							  c->piece.len - (int) c->copy_off) != 1)
				return false;
			c->copy_off = c->piece.len;
			continue;
		}
		if (c->copy_last)
			break;
		resetStringInfo(&c->piece);
		c->copy_off = 0;
		if (pg->copy_more)
		{
			MemoryContext old = MemoryContextSwitchTo(c->job.part->cxt);

			c->copy_last = !pg->copy_more(pg->copy_arg, c->copy_next, &c->piece);
			MemoryContextSwitchTo(old);
		}
		else
			c->copy_last = true;
	}
	if (PQputCopyEnd(c->conn, NULL) != 1)
		return false;
	c->copy_next++;
	c->in_copy = false;
	resetStringInfo(&c->piece);
	return true;
}

/* move c's step (or connection attempt) on as far as it goes without waiting */
static void
drive(PgConn *c)
{
	if (c->state == CONN_CONNECTING)
	{
		c->poll = PQconnectPoll(c->conn);
		watches_changed = true;
		if (c->poll == PGRES_POLLING_FAILED)
			connect_failed(c);
		else if (c->poll == PGRES_POLLING_OK)
		{
			PQsetErrorVerbosity(c->conn, PQERRORS_DEFAULT);
			if (PQsetnonblocking(c->conn, 1) != 0)
			{
				conn_failed(c, NULL);
				return;
			}
			c->state = CONN_BUSY;
			c->epoch = ++last_epoch;
			c->fresh = true;
			c->phase = PHASE_INIT;
			send_next(c);
			if (c->job.part)
				drive(c);
		}
		return;
	}
	while (c->state == CONN_BUSY && c->job.part)
	{
		PGresult   *res;
		int			f;

		if (c->in_copy && !feed_copy(c))
		{
			if (PQstatus(c->conn) != CONNECTION_OK)
				conn_failed(c, NULL);
			else
				c->want_write = true;
			return;
		}
		f = PQflush(c->conn);
		if (f < 0)
		{
			conn_failed(c, NULL);
			return;
		}
		c->want_write = (f == 1);
		if (!PQconsumeInput(c->conn))
		{
			conn_failed(c, NULL);
			return;
		}
		if (PQisBusy(c->conn))
			return;				/* wait for the socket */
		res = PQgetResult(c->conn);
		if (res == NULL)
		{
			/* this phase is answered */
			if (c->phase == PHASE_INIT)
				c->phase = PHASE_MAIN;
			else if (c->phase == PHASE_MAIN &&
					 PQtransactionStatus(c->conn) != PQTRANS_IDLE)
				c->phase = PHASE_CLEANUP;
			else
			{
				finish_job(c);
				return;
			}
			send_next(c);
			continue;
		}
		if (PQresultStatus(res) == PGRES_COPY_IN)
		{
			if (c->piece.data == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(PgContext);

				initStringInfo(&c->piece);
				MemoryContextSwitchTo(old);
			}
			resetStringInfo(&c->piece);
			c->in_copy = true;
			c->copy_off = 0;
			c->copy_last = false;
		}
		else if (PQresultStatus(res) == PGRES_COPY_OUT ||
				 PQresultStatus(res) == PGRES_COPY_BOTH)
		{
			PQclear(res);
			conn_failed(c, "the destination started a COPY TO, which firehose never asks for");
			return;
		}
		else if (c->phase != PHASE_CLEANUP)
			keep_result(c, res);
		PQclear(res);
	}
}

/*
 * fh_pg_start
 *		Run part's PostgreSQL step (req->pg) on its stream's connection,
 *		after the steps queued before it; its answer comes back from
 *		fh_pg_done.  Its memory must live until then (the part's context).
 */
void
fh_pg_start(FhPart *part, FhRequest *req, int64 timeout_ms)
{
	PgConn	   *c;
	Job		   *job;

	if (PgContext == NULL)
		PgContext = AllocSetContextCreate(TopMemoryContext, "firehose pg connections",
										  ALLOCSET_SMALL_SIZES);
	c = find_conn(req->pg->key);
	job = MemoryContextAlloc(PgContext, sizeof(Job));
	job->part = part;
	job->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	{
		MemoryContext old = MemoryContextSwitchTo(PgContext);

		c->queue = lappend(c->queue, job);
		MemoryContextSwitchTo(old);
	}
	part->in_flight = true;
	nrunning++;
	begin_job(c);
}

/* forget part's step: waiting, or running (its connection is closed) */
void
fh_pg_cancel(FhPart *part)
{
	ListCell   *lc;

	foreach(lc, conns)
	{
		PgConn	   *c = lfirst(lc);
		ListCell   *q;

		if (c->job.part == part)
		{
			close_conn(c);
			c->job.part = NULL;
			part->in_flight = false;
			nrunning--;
			begin_job(c);
			return;
		}
		foreach(q, c->queue)
		{
			Job		   *job = lfirst(q);

			if (job->part == part)
			{
				c->queue = foreach_delete_current(c->queue, q);
				pfree(job);
				part->in_flight = false;
				nrunning--;
				return;
			}
		}
	}
	finished = list_delete_ptr(finished, part);
}

/*
 * The sockets to wait on and what for; *changed tells whether they may
 * differ from the last call's.
 */
int
fh_pg_watches(FhPgWatch *out, int max, bool *changed)
{
	static FhPgWatch *last = NULL;
	static int	nlast = 0;
	ListCell   *lc;
	int			n = 0;

	foreach(lc, conns)
	{
		PgConn	   *c = lfirst(lc);
		uint32		ev = 0;

		if (n == max || c->job.part == NULL || c->conn == NULL || PQsocket(c->conn) < 0)
			continue;
		if (c->state == CONN_CONNECTING)
			ev = c->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
		else if (c->state == CONN_BUSY)
			ev = WL_SOCKET_READABLE | (c->want_write ? WL_SOCKET_WRITEABLE : 0);
		if (ev == 0)
			continue;
		out[n].fd = PQsocket(c->conn);
		out[n].events = ev;
		n++;
	}

	/*
	 * A socket closed and another one opened under the same number must be
	 * added again too (watches_changed), not only a different list.
	 */
	*changed = watches_changed || n != nlast ||
		(n > 0 && memcmp(out, last, sizeof(FhPgWatch) * n) != 0);
	watches_changed = false;
	if (*changed && n > 0)
	{
		if (PgContext == NULL)
			PgContext = AllocSetContextCreate(TopMemoryContext, "firehose pg connections",
											  ALLOCSET_SMALL_SIZES);
		if (last)
			pfree(last);
		last = MemoryContextAlloc(PgContext, sizeof(FhPgWatch) * n);
		memcpy(last, out, sizeof(FhPgWatch) * n);
	}
	nlast = n;
	return n;
}

/* the socket fd is ready: move its connection on */
void
fh_pg_service(int fd)
{
	ListCell   *lc;

	foreach(lc, conns)
	{
		PgConn	   *c = lfirst(lc);

		if (c->conn && c->job.part && PQsocket(c->conn) == fd)
		{
			drive(c);
			if (c->job.part == NULL)
				begin_job(c);
			return;
		}
	}
}

/* timeout_ms, or less when a step's deadline comes sooner */
long
fh_pg_timeout(long timeout_ms)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, conns)
	{
		PgConn	   *c = lfirst(lc);
		long		left;

		if (c->job.part == NULL)
		{
			/* a step waits for a connection that is free: at once */
			if (c->queue != NIL)
				timeout_ms = 0;
			continue;
		}
		left = (long) TimestampDifferenceMilliseconds(now, c->job.deadline) + 1;
		timeout_ms = timeout_ms < 0 ? left : Min(timeout_ms, left);
	}
	return timeout_ms;
}

/*
 * The parts whose step is answered (at most max_done; the rest come with
 * the next call).  Steps past their deadline are answered here, with their
 * connection closed; connections idle too long are closed.
 */
int
fh_pg_done(FhPart **done, int max_done)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;

	foreach(lc, conns)
	{
		PgConn	   *c = lfirst(lc);

		if (c->job.part && now >= c->job.deadline)
		{
			conn_failed(c, "the destination did not answer within request_timeout");
			begin_job(c);
		}
		else if (c->job.part == NULL && c->state == CONN_IDLE && c->queue == NIL &&
				 TimestampDifferenceExceeds(c->last_used, now, IDLE_CLOSE_MS))
			close_conn(c);
		/* a step that ended at once (refused, no connection) frees it */
		begin_job(c);
	}
	while (n < max_done && finished != NIL)
	{
		done[n++] = linitial(finished);
		finished = list_delete_first(finished);
	}
	return n;
}
