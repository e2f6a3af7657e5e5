/*-------------------------------------------------------------------------
 *
 * netacl.h
 *	  firehose.allowed_destinations: which hosts and addresses streams may
 *	  send to.  Pure C (no PostgreSQL headers, no allocation), so the unit
 *	  tests build it alone and the worker calls it from inside a libcurl
 *	  callback.
 *
 * A list is comma-separated entries, tried in order; the first that matches
 * decides, and a host or address that none matches is refused.  An entry is
 * "*" (everything), an IPv4 or IPv6 address with an optional /prefix
 * length, a host name (matched without regard to case), or "*.domain" (every
 * name under domain); "!" before an entry refuses what it matches.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FH_NETACL_H
#define FH_NETACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* link-local addresses (cloud metadata services among them) refused */
#define FH_NETACL_DEFAULT "!169.254.0.0/16, !fe80::/10, !fd00:ec2::254, *"

/*
 * Is list well-formed?  If not, false with a sentence saying which entry is
 * wrong in err (errlen bytes).
 */
extern bool fh_netacl_check_list(const char *list, char *err, size_t errlen);

/*
 * May streams send to host, a host name or an address literal (an IPv6 one
 * in brackets or not), the host of a URL?  Names are matched by name entries
 * and "*", addresses by address entries and "*".  A malformed list allows
 * nothing.
 */
extern bool fh_netacl_allows_host(const char *list, const char *host);

/* May streams connect to the address sa (AF_INET or AF_INET6)? */
extern bool fh_netacl_allows_addr(const char *list, const struct sockaddr *sa);

#endif							/* FH_NETACL_H */
