/*-------------------------------------------------------------------------
 *
 * transport.c
 *	  The worker's libcurl multi handle, waited on together with the latch.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * to call it back on a timer (CURLMOPT_TIMERFUNCTION).  The worker waits on
 * one WaitEventSet of its latch, postmaster death and those sockets (built
 * again only when curl changes what to watch),
 * so that a commit, SIGTERM, SIGHUP or a barrier is seen as promptly while
 * requests are in flight as when idle.  No ereport happens inside a curl
 * callback: they only copy data and flag overflows.
 *
 * Every connection passes firehose.allowed_destinations twice: the URL's
 * host when the request starts, and each address the host resolves to when
 * curl opens a socket to it (CURLOPT_OPENSOCKETFUNCTION), so that neither a
 * name of the user's choosing nor a DNS answer reaches a refused address.
 *
 * Every socket curl opens is counted in PostgreSQL's file descriptor budget
 * (AcquireExternalFD) from its opening to its closing (closesocket_cb), as
 * postgres_fdw does for its connections.  fd.c keeps the relation files it
 * caches within max_safe_fds, but only counts the descriptors it knows of:
 * with hundreds of staging tables open, sockets it did not know of took the
 * process past its open-file limit, and then epoll_create1 or dlopen failed
 * and the worker errored in a loop.  Counted, they make fd.c close relation
 * files to make room, and when there is none the connection is refused and
 * the request fails as a connection failure that is retried.
 *
 * libcurl 7.88 to 8.1 close a socket whose connect had not finished (a
 * refused or abandoned attempt) without the close callback (curl PR 11439),
 * so each socket counted is noted with its inode: one that is no longer
 * open as that socket was closed behind our back, and its place is given
 * back (forget_closed_sockets) before a socket is refused for want of one
 * and whenever curl changes the sockets it watches.
 *
 * curl keeps a finished request's connection for the next request to the
 * same host and port, and by default keeps up to four per request in
 * flight, closing one only as another is given back.  With many
 * destinations the idle connections took every place: a request to a new
 * one failed for want of a socket until curl dropped them as too old
 * (118 s, and only when it looked for a connection), and an idle worker kept
 * them.  So curl may have no more connections than the places
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS: at the limit it closes the oldest idle
 * one for a new one, or the request waits for one to finish, counted in its
 * timeout), and keeps no more than curl's own four per request in flight
 * nor, besides those in use, half the places (CURLMOPT_MAXCONNECTS, set as
 * requests come and go).  The oldest go first, so a few busy endpoints keep
 * theirs.  When nothing is in flight and more than half the places are
 * still held, they are all closed (trim_idle_connections).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#define MAX_SOCKETS		1024
#define MAX_RESPONSE	(1024 * 1024)
#define MAX_HEADERS		(64 * 1024) /* of one answer, all header lines */
/* curl's upload buffer for streamed bodies: fewer, larger writes (max 2 MB) */
#define UPLOAD_BUFFER	(512 * 1024L)

typedef struct SockWatch
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} SockWatch;

static CURLM *multi = NULL;
static SockWatch socks[MAX_SOCKETS];
static int	nsocks = 0;
static long curl_timeout_ms = -1;
static int	nrunning = 0;

/* the latch, postmaster death and the sockets; rebuilt when they change */
static WaitEventSet *wait_set = NULL;
static bool wait_set_stale = true;

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nsocks; i++)
		if (socks[i].fd == s)
			break;
	wait_set_stale = true;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsocks)
			socks[i] = socks[--nsocks];
		return 0;
	}
	if (i == nsocks)
	{
		if (nsocks == MAX_SOCKETS)
			return -1;
		nsocks++;
	}
	socks[i].fd = s;
	socks[i].what = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	curl_timeout_ms = timeout_ms;
	return 0;
}

/*
 * Bytes of answers held by all parts: with the parts' own memory
 * (worker.c), bounded by firehose.worker_memory, of which answers get half.
 */
static int64 response_bytes = 0;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FhPart	   *part = userdata;
	size_t		n = size * nmemb;
	int64		budget = (int64) fh_worker_memory_kb * 1024 / 2;

	if (part->response.body.len + n > (part->request.max_response > 0 ?
									   part->request.max_response : MAX_RESPONSE) ||
		response_bytes + (int64) n > budget)
	{
		/*
		 * Stop reading: draining the rest of an answer that may never end
		 * (or be 2 GB) would only hold the connection until the timeout.
		 * complete() still reports the status.
		 */
		part->response.body_truncated = true;
		return 0;
	}
	/* appendBinaryStringInfo can only fail on > 1 GB, ruled out above */
	appendBinaryStringInfo(&part->response.body, ptr, n);
	response_bytes += n;
	return n;
}

/*
 * CURLOPT_HEADERFUNCTION: count the answer's header bytes and stop at
 * MAX_HEADERS.  libcurl keeps every header for curl_easy_header(); it bounds
 * them itself only since 8.3 (CVE-2023-38039), at 300 kB.
 */
static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FhPart	   *part = userdata;
	size_t		n = size * nmemb;

	part->response.header_bytes += n;
	if (part->response.header_bytes > MAX_HEADERS)
	{
		part->response.headers_too_large = true;
		return 0;
	}
	return n;
}

/* free the answer of part's last request (in the part's memory) */
void
fh_transport_release_body(FhPart *part)
{
	if (part->response.body.data == NULL)
		return;
	response_bytes -= part->response.body.len;
	pfree(part->response.body.data);
	part->response.body.data = NULL;
	part->response.body.len = 0;
}

/*
 * CURLOPT_READFUNCTION of a streamed body (FhRequest.piece): fills curl's
 * upload buffer from the sink's pieces, one after the other: as many as fit
 * whole by the sink's fill(), when it has one, and the piece that does not
 * fit, the rest of it in the next call.
 */
static size_t
read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	FhPart	   *part = userdata;
	FhRequest  *req = &part->request;
	size_t		room = size * nitems;
	size_t		n = 0;

	while (n < room)
	{
		size_t		take;

		if (req->piece_left == 0)
		{
			if (req->piece_end)
				break;
			if (req->fill)
			{
				n += req->fill(req->piece_arg, &req->piece_next, buf + n, room - n);
				if (n == room)
					break;
			}
			resetStringInfo(&req->scratch);
			req->piece_data = NULL;
			req->piece_left = 0;
			if (!req->piece(req->piece_arg, req->piece_next++,
							&req->piece_data, &req->piece_left, &req->scratch))
			{
				req->piece_end = true;
				break;
			}
			if (req->piece_data == NULL)
			{
				req->piece_data = req->scratch.data;
				req->piece_left = req->scratch.len;
			}
			continue;
		}
		take = Min(room - n, req->piece_left);
		memcpy(buf + n, req->piece_data, take);
		n += take;
		req->piece_data += take;
		req->piece_left -= take;
	}
	return n;
}

/* the reading state of a streamed body, at its start */
static void
rewind_pieces(FhRequest *req)
{
	req->piece_next = 0;
	req->piece_data = NULL;
	req->piece_left = 0;
	req->piece_end = false;
}

/* CURLOPT_SEEKFUNCTION: curl may send a streamed body again from its start */
static int
seek_cb(void *userdata, curl_off_t offset, int origin)
{
	FhPart	   *part = userdata;

	if (offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	rewind_pieces(&part->request);
	return CURL_SEEKFUNC_OK;
}

/* the sockets opensocket_cb opened and counted with AcquireExternalFD */
typedef struct CountedSocket
{
	curl_socket_t fd;
	ino_t		ino;
} CountedSocket;

static CountedSocket counted[MAX_SOCKETS];
static int	ncounted = 0;

/*
 * The most sockets curl may have open: a quarter of fd.c's budget.  fd.c
 * lends a third of it to all external fds; the rest of that third stays for
 * the wait set's epoll fd (rebuilt as the sockets change), the libpq
 * connections and PostgreSQL's own.
 */
static int
max_sockets(void)
{
	return Min(MAX_SOCKETS, Max(max_safe_fds / 4, 1));
}

/*
 * Bound curl's cache of connections by the requests now in flight: four
 * each, as curl's default, but no more than half the sockets' places idle
 * besides one per request.  curl counts the connections in use in its
 * cache too, and looks at the bound when a request gives its connection
 * back (closing the oldest idle one when the cache holds more), so it is
 * set as requests are added and removed.  (Half the places alone would
 * make a busy endpoint with more requests in flight than that close a
 * connection at every answer and open another.)
 */
static void
bound_connection_cache(void)
{
	long		in_flight = Max(nrunning, 1);

	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
					  Min(4 * in_flight, in_flight + max_sockets() / 2));
}

/* forget counted socket i and give its place back */
static void
uncount(int i)
{
	counted[i] = counted[--ncounted];
	ReleaseExternalFD();
}

/* give back the place of counted socket fd, if it is one */
static void
uncount_socket(curl_socket_t fd)
{
	for (int i = 0; i < ncounted; i++)
		if (counted[i].fd == fd)
		{
			uncount(i);
			return;
		}
}

/* is fd no longer the socket of inode ino? */
static bool
socket_gone(curl_socket_t fd, ino_t ino)
{
	struct stat st;

	return fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != ino;
}

/*
 * Give back the places of the counted sockets that curl closed without
 * calling closesocket_cb.
 */
static void
forget_closed_sockets(void)
{
	for (int i = 0; i < ncounted;)
	{
		if (socket_gone(counted[i].fd, counted[i].ino))
			uncount(i);
		else
			i++;
	}
}

/*
 * A socket for address counted in fd.c's budget, or CURL_SOCKET_BAD with
 * resp->no_fd set when there is no room (fd.c closed what relation files
 * it could first).
 */
static curl_socket_t
open_counted_socket(struct curl_sockaddr *address, FhResponse *resp)
{
	curl_socket_t s;
	struct stat st;

	if (ncounted >= max_sockets() || !AcquireExternalFD())
	{
		forget_closed_sockets();
		if (ncounted >= max_sockets() || !AcquireExternalFD())
		{
			resp->no_fd = true;
			return CURL_SOCKET_BAD;
		}
	}
	s = socket(address->family, address->socktype, address->protocol);
	if (s == CURL_SOCKET_BAD || fstat(s, &st) != 0)
	{
		if (s != CURL_SOCKET_BAD)
			close(s);
		ReleaseExternalFD();
		return CURL_SOCKET_BAD;
	}
	/* a counted socket with this number was closed behind our back */
	uncount_socket(s);
	counted[ncounted].fd = s;
	counted[ncounted].ino = st.st_ino;
	ncounted++;
	return s;
}

/*
 * CURLOPT_OPENSOCKETFUNCTION: a socket for address, unless the request's
 * host or this address is refused by firehose.allowed_destinations; then
 * the address is noted in the response (the worker records the failure as
 * Firehose.DestinationNotAllowed) and curl tries the next address or fails.
 */
static curl_socket_t
opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	FhPart	   *part = clientp;
	FhResponse *resp = &part->response;
	const void *bytes = NULL;

	if (resp->refused_host)
		return CURL_SOCKET_BAD;
	if (fh_netacl_allows_addr(FH_ALLOWED_DESTINATIONS(), &address->addr))
		return open_counted_socket(address, resp);
	if (address->family == AF_INET)
		bytes = &((struct sockaddr_in *) &address->addr)->sin_addr;
	else if (address->family == AF_INET6)
		bytes = &((struct sockaddr_in6 *) &address->addr)->sin6_addr;
	if (bytes == NULL ||
		inet_ntop(address->family, bytes, resp->refused, sizeof(resp->refused)) == NULL)
		strlcpy(resp->refused, "an address", sizeof(resp->refused));
	return CURL_SOCKET_BAD;
}

/*
 * CURLOPT_CLOSESOCKETFUNCTION: close a socket opensocket_cb opened and give
 * its place in fd.c's budget back.  curl calls it also for a connection
 * closed from its cache long after the easy handle that opened it is gone
 * (so it uses no clientp), but not for every socket (see the file header).
 */
static int
closesocket_cb(void *clientp, curl_socket_t item)
{
	uncount_socket(item);
	return close(item) == 0 ? 0 : 1;
}

/* is the host of url refused by firehose.allowed_destinations? */
static bool
host_refused(const char *url, char *host_out, size_t size)
{
	CURLU	   *h = curl_url();
	char	   *host = NULL;
	bool		refused = true;

	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		refused = !fh_netacl_allows_host(FH_ALLOWED_DESTINATIONS(), host);
		strlcpy(host_out, host, size);
		curl_free(host);
	}
	else
		strlcpy(host_out, "a host", size);
	curl_url_cleanup(h);
	return refused;
}

/* a wait set for the latch, postmaster death and nsockets sockets to come */
static WaitEventSet *
new_wait_set(int nsockets)
{
	WaitEventSet *set = CreateWaitEventSet(TopMemoryContext, nsockets + 2);

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	return set;
}

/* make the multi handle, with no transfer and no connection */
static void
new_multi(void)
{
	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	/* never more connections than sockets may be counted (file header) */
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_sockets());
	bound_connection_cache();
	nsocks = 0;
	curl_timeout_ms = -1;
	wait_set_stale = true;
}

/*
 * With no request in flight, close every connection curl keeps when they
 * hold more than half the sockets' places (left by a burst to many
 * destinations).  curl closes idle connections beyond CURLMOPT_MAXCONNECTS
 * only one at a time as requests finish, so an idle worker went on holding
 * them; and it has no call to close some, so the multi handle is made
 * again.  A few busy endpoints never hold that many: theirs stay.
 */
static void
trim_idle_connections(void)
{
	if (nrunning > 0 || ncounted <= max_sockets() / 2)
		return;
	forget_closed_sockets();
	if (ncounted <= max_sockets() / 2)
		return;
	/* closes the cached connections through closesocket_cb */
	curl_multi_cleanup(multi);
	multi = NULL;
	forget_closed_sockets();
	new_multi();
}

void
fh_transport_init(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "curl_global_init failed");
	new_multi();

	/*
	 * The wait set's epoll fd counts in fd.c's budget of external fds, as
	 * curl's sockets do, which may take a third of it.  Taken now, before
	 * any socket, and given back only to be taken again when the set is
	 * rebuilt, its place cannot go to the sockets.
	 */
	wait_set = new_wait_set(0);
	wait_set_stale = true;
}

int
fh_transport_running(void)
{
	return nrunning + fh_pg_running();
}

/*
 * fh_transport_start
 *		Send part's request.  req's memory must live until completion (it is
 *		in the part's context).
 */
void
fh_transport_start(FhPart *part, FhRequest *req, int64 timeout_ms)
{
	CURL	   *easy;
	char	   *errbuf;
	MemoryContext old;

	if (req->pg)
	{
		/* a PostgreSQL step: on the stream's libpq connection (pgconn.c) */
		fh_transport_release_body(part);
		memset(&part->response, 0, sizeof(part->response));
		fh_pg_start(part, req, timeout_ms);
		return;
	}
	easy = curl_easy_init();
	old = MemoryContextSwitchTo(part->cxt);
	if (easy == NULL)
		elog(ERROR, "curl_easy_init failed");
	errbuf = palloc0(CURL_ERROR_SIZE);
	fh_transport_release_body(part);
	memset(&part->response, 0, sizeof(part->response));
	initStringInfo(&part->response.body);
	/* no "Expect: 100-continue" round trip for large bodies */
	req->headers = curl_slist_append(req->headers, "Expect:");

	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	/* the body is sent from where it lies or as it is made, never copied whole */
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	if (req->method && strcmp(req->method, "POST") != 0)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->piece)
	{
		/* made as it is sent; the scratch room is made here, not in curl's callback */
		if (req->scratch.data == NULL)
		{
			initStringInfo(&req->scratch);
			enlargeStringInfo(&req->scratch, (int) req->piece_room + 1);
		}
		rewind_pieces(req);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(easy, CURLOPT_READDATA, part);
		curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(easy, CURLOPT_SEEKDATA, part);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->stream_len);
		curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
	}
	else if (req->data)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->data);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->len);
	}
	else
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body.data ? req->body.data : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body.len);
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(timeout_ms, 30000));
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	/* a 3xx is the answer (the sink judges it), never followed elsewhere */
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "firehose-postgresql/0.1");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, part);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, part);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, part);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, req->tls_verify ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, req->tls_verify ? 2L : 0L);
	if (req->ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, part);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
	if (host_refused(req->url, part->response.refused, sizeof(part->response.refused)))
	{
		/* no connection at all: not even one kept open from before */
		part->response.refused_host = true;
		curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
	}
	else
		part->response.refused[0] = '\0';
	part->response.curl_error = errbuf;
	part->easy = easy;
	part->in_flight = true;
	MemoryContextSwitchTo(old);

	if (curl_multi_add_handle(multi, easy) != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed");
	nrunning++;
	bound_connection_cache();
}

static void
release_easy(FhPart *part)
{
	curl_multi_remove_handle(multi, part->easy);
	curl_easy_cleanup(part->easy);
	curl_slist_free_all(part->request.headers);
	part->request.headers = NULL;
	part->easy = NULL;
	part->in_flight = false;
	nrunning--;
	bound_connection_cache();
}

void
fh_transport_cancel(FhPart *part)
{
	if (part->easy)
		release_easy(part);
	else if (part->request.pg)
		fh_pg_cancel(part);
}

static void
complete(FhPart *part, CURLcode code)
{
	struct curl_header *h;
	CURL	   *easy = part->easy;

	part->response.curl_code = code;

	/*
	 * An answer cut off by write_cb is still an answer: the sinks judge its
	 * status and body_truncated.  One whose headers overflow is none.
	 */
	if (code == CURLE_OK ||
		(code == CURLE_WRITE_ERROR && part->response.body_truncated))
	{
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &part->response.status);
		if (curl_easy_header(easy, "Content-Type", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
			part->response.content_type = MemoryContextStrdup(part->cxt, h->value);
		part->response.has_content_encoding =
			curl_easy_header(easy, "Content-Encoding", 0, CURLH_HEADER, -1, &h) == CURLHE_OK;
		part->response.has_content_length =
			curl_easy_header(easy, "Content-Length", 0, CURLH_HEADER, -1, &h) == CURLHE_OK;
		if (curl_easy_header(easy, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
			part->response.etag = MemoryContextStrdup(part->cxt, h->value);
	}
	else
	{
		part->response.status = 0;
		if (part->response.headers_too_large)
			snprintf(part->response.curl_error, CURL_ERROR_SIZE,
					 "The response headers exceeded %d kB.", MAX_HEADERS / 1024);
		else if (part->response.no_fd)
			strlcpy(part->response.curl_error,
					"No file descriptor was free for a connection: the worker's "
					"open files are at max_files_per_process or the server's "
					"open-file limit.", CURL_ERROR_SIZE);
		else if (part->response.curl_error[0] == '\0')
			strlcpy(part->response.curl_error, curl_easy_strerror(code), CURL_ERROR_SIZE);
	}
	release_easy(part);
}

/*
 * fh_transport_pump
 *		Let the transfers under way move what they can now, without waiting;
 *		for the worker while it reads a large part out of the staging tables.
 *
 * The worker is one process: reading a part of 32 MB takes it a tenth of a
 * second, in which its requests stood still as soon as their sockets'
 * buffers were full.  Every part in flight was then read before the first
 * was sent, and each was fresh memory (the raw benchmark's 4 x 32 MB).
 * Pumped while it reads, a part is sent while the next is read, and its
 * memory is free for the one after.  Finished transfers are left for
 * fh_transport_wait() to collect: nothing here changes a part's state, and
 * curl's callbacks (read_cb, write_cb) use only the part's own memory.
 */
static bool finished_unread = false;

void
fh_transport_pump(void)
{
	SockWatch	watched[MAX_SOCKETS];
	int			n = nsocks;
	int			running;

	if (nrunning == 0)
		return;
	/* socket_cb may change socks[] under the loop; stray fds curl ignores */
	memcpy(watched, socks, sizeof(SockWatch) * n);
	for (int i = 0; i < n; i++)
	{
		int			flags = 0;

		if (watched[i].what & CURL_POLL_IN)
			flags |= CURL_CSELECT_IN;
		if (watched[i].what & CURL_POLL_OUT)
			flags |= CURL_CSELECT_OUT;
		if (flags)
			curl_multi_socket_action(multi, watched[i].fd, flags, &running);
	}
	/* a transfer that finished here must not wait for the next event */
	if (running < nrunning)
		finished_unread = true;
}

/*
 * fh_transport_wait
 *		Wait up to timeout_ms for the latch or for network progress; return
 *		the parts whose request finished (at most max_done; the rest are
 *		returned by the next call).
 */
int
fh_transport_wait(long timeout_ms, FhPart **done, int max_done)
{
	WaitEvent	events[64];
	int			nevents;
	int			ndone = 0;
	int			running;
	CURLMsg    *msg;
	int			msgs_left;
	FhPgWatch	pgw[MAX_SOCKETS];
	int			npgw;
	bool		pg_changed;

	trim_idle_connections();
	npgw = fh_pg_watches(pgw, MAX_SOCKETS, &pg_changed);
	if (pg_changed)
		wait_set_stale = true;
	timeout_ms = fh_pg_timeout(timeout_ms);
	if (finished_unread)
	{
		finished_unread = false;
		timeout_ms = 0;
	}
	if (curl_timeout_ms == 0)
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	else
	{
		if (nrunning > 0 && curl_timeout_ms > 0)
			timeout_ms = timeout_ms < 0 ? curl_timeout_ms : Min(timeout_ms, curl_timeout_ms);

		if (wait_set_stale || wait_set == NULL)
		{
			forget_closed_sockets();
			/* freed and made again: its epoll fd's place in fd.c's budget too */
			if (wait_set)
				FreeWaitEventSet(wait_set);
			wait_set = NULL;
			wait_set = new_wait_set(nsocks + npgw);
			for (int i = 0; i < nsocks; i++)
			{
				uint32		ev = 0;

				if (socks[i].what & CURL_POLL_IN)
					ev |= WL_SOCKET_READABLE;
				if (socks[i].what & CURL_POLL_OUT)
					ev |= WL_SOCKET_WRITEABLE;
				AddWaitEventToSet(wait_set, ev, socks[i].fd, NULL, NULL);
			}
			/* user_data tells the libpq sockets from curl's */
			for (int i = 0; i < npgw; i++)
				AddWaitEventToSet(wait_set, pgw[i].events, pgw[i].fd, NULL, &pgw[i]);
			wait_set_stale = false;
		}
		nevents = WaitEventSetWait(wait_set, timeout_ms, events, lengthof(events),
								   PG_WAIT_EXTENSION);

		if (nevents == 0 && nrunning > 0)
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
		for (int i = 0; i < nevents; i++)
		{
			int			flags = 0;

			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				continue;
			}
			if (events[i].user_data != NULL)
			{
				fh_pg_service(events[i].fd);
				continue;
			}
			if (events[i].events & WL_SOCKET_READABLE)
				flags |= CURL_CSELECT_IN;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				flags |= CURL_CSELECT_OUT;
			if (flags)
				curl_multi_socket_action(multi, events[i].fd, flags, &running);
		}
	}

	while (ndone < max_done && (msg = curl_multi_info_read(multi, &msgs_left)) != NULL)
	{
		FhPart	   *part;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &part);
		complete(part, msg->data.result);
		done[ndone++] = part;
	}
	return ndone + fh_pg_done(done + ndone, max_done - ndone);
}
