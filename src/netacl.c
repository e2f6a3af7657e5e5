/*-------------------------------------------------------------------------
 *
 * netacl.c
 *	  firehose.allowed_destinations (see netacl.h).  The list is parsed
 *	  again at every check, into stack variables: it is short, and the
 *	  worker's libcurl callback may neither allocate nor report errors.
 *
 *-------------------------------------------------------------------------
 */
#include "netacl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_NAME	253			/* longest DNS name */

typedef struct Addr
{
	int			family;			/* AF_INET or AF_INET6 */
	unsigned char bytes[16];	/* 4 used for AF_INET */
} Addr;

typedef enum EntryKind
{
	ENTRY_ALL,					/* "*" */
	ENTRY_NET,					/* address[/prefix] */
	ENTRY_NAME,					/* host name */
	ENTRY_SUFFIX				/* "*.domain": name is the domain */
} EntryKind;

typedef struct Entry
{
	bool		deny;
	EntryKind	kind;
	Addr		addr;
	int			prefix;
	const char *name;			/* into the list, namelen bytes */
	size_t		namelen;
} Entry;

/* an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address */
static void
unmap(Addr *a)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->family == AF_INET6 && memcmp(a->bytes, mapped, 12) == 0)
	{
		memmove(a->bytes, a->bytes + 12, 4);
		a->family = AF_INET;
	}
}

/* s (len bytes, brackets around IPv6 allowed) as an address literal */
static bool
parse_addr(const char *s, size_t len, Addr *a)
{
	char		buf[64];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
	{
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, a->bytes) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, a->bytes) == 1)
		a->family = AF_INET6;
	else
		return false;
	unmap(a);
	return true;
}

static bool
is_name(const char *s, size_t len)
{
	if (len == 0 || len > MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/* one entry, s (len bytes, trimmed); false when malformed */
static bool
parse_entry(const char *s, size_t len, Entry *e)
{
	const char *slash;

	memset(e, 0, sizeof(*e));
	if (len > 0 && s[0] == '!')
	{
		e->deny = true;
		s++;
		len--;
		while (len > 0 && (*s == ' ' || *s == '\t'))
			s++, len--;
	}
	if (len == 1 && s[0] == '*')
	{
		e->kind = ENTRY_ALL;
		return true;
	}
	if (len > 2 && s[0] == '*' && s[1] == '.')
	{
		e->kind = ENTRY_SUFFIX;
		e->name = s + 2;
		e->namelen = len - 2;
		return is_name(e->name, e->namelen);
	}
	slash = memchr(s, '/', len);
	if (parse_addr(s, slash ? (size_t) (slash - s) : len, &e->addr))
	{
		int			max = e->addr.family == AF_INET ? 32 : 128;

		e->kind = ENTRY_NET;
		e->prefix = max;
		if (slash)
		{
			const char *p = slash + 1;
			const char *end = s + len;
			int			n = 0;

			if (p == end || end - p > 3)
				return false;
			for (; p < end; p++)
			{
				if (*p < '0' || *p > '9')
					return false;
				n = n * 10 + (*p - '0');
			}
			/* ::ffff:a.b.c.d/n was unmapped: its prefix counts IPv6 bits */
			if (max == 32 && memchr(s, ':', slash - s) != NULL)
				n -= 96;
			if (n < 0 || n > max)
				return false;
			e->prefix = n;
		}
		return true;
	}
	e->kind = ENTRY_NAME;
	e->name = s;
	e->namelen = len;
	return is_name(s, len);
}

/*
 * Walk list: call match for each entry until it returns true; the verdict of
 * that entry, or false (no entry matched, or the list is malformed).
 */
typedef bool (*EntryMatch) (const Entry *e, const void *arg);

static bool
walk(const char *list, EntryMatch match, const void *arg, char *err, size_t errlen)
{
	const char *p = list;

	if (list == NULL)
		return false;
	for (;;)
	{
		const char *end = strchr(p, ',');
		const char *stop = end ? end : p + strlen(p);
		const char *b = p;
		const char *e = stop;
		Entry		entry;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		/* an empty entry is a mistake, unless it is the whole (empty) list */
		if (b < e || end != NULL || p != list)
		{
			if (!parse_entry(b, e - b, &entry))
			{
				if (err)
					snprintf(err, errlen, "Entry \"%.*s\" is not \"*\", an address with an optional /prefix length, a host name or \"*.domain\", with an optional \"!\" before it.",
							 (int) (e - b), b);
				return false;
			}
			if (match && match(&entry, arg))
				return !entry.deny;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return match == NULL;		/* only checked: well-formed */
}

bool
fh_netacl_check_list(const char *list, char *err, size_t errlen)
{
	if (list == NULL)
	{
		snprintf(err, errlen, "The list is missing.");
		return false;
	}
	return walk(list, NULL, NULL, err, errlen);
}

static bool
match_addr(const Entry *e, const void *arg)
{
	const Addr *a = arg;
	int			whole;
	int			bits;

	if (e->kind == ENTRY_ALL)
		return true;
	if (e->kind != ENTRY_NET || e->addr.family != a->family)
		return false;
	whole = e->prefix / 8;
	bits = e->prefix % 8;
	if (memcmp(e->addr.bytes, a->bytes, whole) != 0)
		return false;
	if (bits == 0)
		return true;
	return ((e->addr.bytes[whole] ^ a->bytes[whole]) & (0xFF << (8 - bits))) == 0;
}

typedef struct Name
{
	const char *s;
	size_t		len;
} Name;

static bool
match_name(const Entry *e, const void *arg)
{
	const Name *n = arg;

	if (e->kind == ENTRY_ALL)
		return true;
	if (e->kind == ENTRY_NAME)
		return n->len == e->namelen && strncasecmp(n->s, e->name, n->len) == 0;
	if (e->kind == ENTRY_SUFFIX)
		return n->len > e->namelen + 1 && n->s[n->len - e->namelen - 1] == '.' &&
			strncasecmp(n->s + n->len - e->namelen, e->name, e->namelen) == 0;
	return false;
}

bool
fh_netacl_allows_host(const char *list, const char *host)
{
	Addr		a;
	Name		n;

	if (host == NULL)
		return false;
	if (parse_addr(host, strlen(host), &a))
		return walk(list, match_addr, &a, NULL, 0);
	n.s = host;
	n.len = strlen(host);
	if (n.len > 0 && host[n.len - 1] == '.')
		n.len--;				/* "example.com." is "example.com" */
	if (!is_name(n.s, n.len))
		return false;
	return walk(list, match_name, &n, NULL, 0);
}

bool
fh_netacl_allows_addr(const char *list, const struct sockaddr *sa)
{
	Addr		a;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
	{
		a.family = AF_INET;
		memcpy(a.bytes, &((const struct sockaddr_in *) sa)->sin_addr, 4);
	}
	else if (sa->sa_family == AF_INET6)
	{
		a.family = AF_INET6;
		memcpy(a.bytes, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
		unmap(&a);
	}
	else
		return false;
	return walk(list, match_addr, &a, NULL, 0);
}
