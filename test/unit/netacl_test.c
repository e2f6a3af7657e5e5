/*-------------------------------------------------------------------------
 *
 * netacl_test.c
 *	  Unit test of src/netacl.c, the firehose.allowed_destinations list:
 *	  its syntax, the default (link-local and metadata addresses refused,
 *	  the rest allowed), first match wins, prefixes on and off byte
 *	  boundaries, IPv4-mapped IPv6 addresses, names and "*.domain".
 *
 * Output: a FAIL line for each failing check, then "netacl: N of M checks
 * pass"; exit status 1 when any check failed.
 *
 *-------------------------------------------------------------------------
 */
#include "netacl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define CHECK_NAME "netacl"
#include "check.h"

static void
check_host(const char *list, const char *host, int expected)
{
	char		what[300];

	snprintf(what, sizeof(what), "host %s under \"%s\"", host, list);
	check(fh_netacl_allows_host(list, host) == expected, what,
		  expected ? "allowed" : "refused", expected ? "refused" : "allowed");
}

/* an address literal, given to fh_netacl_allows_addr as a sockaddr */
static void
check_addr(const char *list, const char *addr, int expected)
{
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	const struct sockaddr *sa;
	char		what[300];

	memset(&in4, 0, sizeof(in4));
	memset(&in6, 0, sizeof(in6));
	if (inet_pton(AF_INET, addr, &in4.sin_addr) == 1)
	{
		in4.sin_family = AF_INET;
		sa = (const struct sockaddr *) &in4;
	}
	else if (inet_pton(AF_INET6, addr, &in6.sin6_addr) == 1)
	{
		in6.sin6_family = AF_INET6;
		sa = (const struct sockaddr *) &in6;
	}
	else
	{
		check(0, "test address parses", addr, "not an address");
		return;
	}
	snprintf(what, sizeof(what), "address %s under \"%s\"", addr, list);
	check(fh_netacl_allows_addr(list, sa) == expected, what,
		  expected ? "allowed" : "refused", expected ? "refused" : "allowed");
}

static void
check_list(const char *list, int expected)
{
	char		err[300] = "";
	char		what[300];

	snprintf(what, sizeof(what), "list \"%s\" is %s", list,
			 expected ? "well-formed" : "malformed");
	check(fh_netacl_check_list(list, err, sizeof(err)) == expected, what,
		  expected ? "true" : "false", err);
	if (!expected)
		check(strstr(err, "is not") != NULL, "a malformed list says why", "a sentence", err);
}

int
main(void)
{
	const char *def = FH_NETACL_DEFAULT;

	/* the default: metadata and link-local refused, loopback and the rest allowed */
	check_list(def, 1);
	check_addr(def, "169.254.169.254", 0);
	check_addr(def, "169.254.0.1", 0);
	check_addr(def, "169.255.0.1", 1);
	check_addr(def, "169.253.255.255", 1);
	check_addr(def, "fd00:ec2::254", 0);
	check_addr(def, "fd00:ec2::253", 1);
	check_addr(def, "fe80::1", 0);
	check_addr(def, "febf:ffff::1", 0);
	check_addr(def, "fec0::1", 1);
	check_addr(def, "::ffff:169.254.169.254", 0);	/* IPv4-mapped */
	check_addr(def, "::ffff:127.0.0.1", 1);
	check_addr(def, "127.0.0.1", 1);
	check_addr(def, "::1", 1);
	check_addr(def, "10.1.2.3", 1);
	check_host(def, "169.254.169.254", 0);
	check_host(def, "[fd00:ec2::254]", 0);
	check_host(def, "fd00:ec2::254", 0);
	check_host(def, "[::ffff:169.254.169.254]", 0);
	check_host(def, "127.0.0.1", 1);
	check_host(def, "localhost", 1);
	check_host(def, "metadata.google.internal", 1);	/* by name: its address decides */

	/* first match wins; nothing matched is refused */
	check_addr("10.0.0.0/8, !10.1.0.0/16", "10.1.2.3", 1);
	check_addr("!10.1.0.0/16, 10.0.0.0/8", "10.1.2.3", 0);
	check_addr("!10.1.0.0/16, 10.0.0.0/8", "10.2.0.1", 1);
	check_addr("10.0.0.0/8", "11.0.0.1", 0);
	check_addr("", "127.0.0.1", 0);
	check_host("", "localhost", 0);
	check_addr("!127.0.0.0/8, !::1, *", "127.0.0.1", 0);
	check_addr("!127.0.0.0/8, !::1, *", "127.1.2.3", 0);
	check_addr("!127.0.0.0/8, !::1, *", "::1", 0);
	check_host("!127.0.0.0/8, !::1, *", "localhost", 1);

	/* prefixes off byte boundaries, /0 and whole addresses */
	check_addr("192.168.4.0/22", "192.168.7.255", 1);
	check_addr("192.168.4.0/22", "192.168.8.0", 0);
	check_addr("192.168.4.0/22", "192.168.3.255", 0);
	check_addr("0.0.0.0/0", "203.0.113.9", 1);
	check_addr("0.0.0.0/0", "2001:db8::1", 0);	/* families apart */
	check_addr("::/0", "2001:db8::1", 1);
	check_addr("::/0", "203.0.113.9", 0);
	check_addr("2001:db8::/33", "2001:db8:7fff::1", 1);
	check_addr("2001:db8::/33", "2001:db8:8000::1", 0);
	check_addr("203.0.113.9", "203.0.113.9", 1);
	check_addr("203.0.113.9", "203.0.113.10", 0);
	check_addr("::ffff:10.0.0.0/104", "10.9.9.9", 1);	/* mapped, IPv6 bits */
	check_addr("::ffff:10.0.0.0/104", "11.0.0.1", 0);
	check_addr("[2001:db8::1]", "2001:db8::1", 1);

	/* names: exact (any case, a final dot ignored) or under a domain */
	check_host("example.com", "example.com", 1);
	check_host("example.com", "EXAMPLE.Com.", 1);
	check_host("example.com", "www.example.com", 0);
	check_host("*.example.com", "www.example.com", 1);
	check_host("*.example.com", "a.b.example.com", 1);
	check_host("*.example.com", "example.com", 0);
	check_host("*.example.com", "badexample.com", 0);
	check_host("!*.internal, *", "metadata.google.internal", 0);
	check_host("!*.internal, *", "api.example.com", 1);
	check_host("10.0.0.0/8", "intranet.example", 0);	/* addresses don't match names */
	check_host("example.com", "10.0.0.1", 0);	/* names don't match addresses */
	check_host("*", "bad host", 0);	/* not a host name */
	check_host("*", "", 0);

	/* syntax */
	check_list("*", 1);
	check_list("", 1);
	check_list(" !169.254.0.0/16 ,\t* ", 1);
	check_list("a.example, *.b.example, 10.0.0.0/8, ::1, [fe80::]/10", 1);
	check_list("10.0.0.0/33", 0);
	check_list("::/129", 0);
	check_list("10.0.0.0/", 0);
	check_list("10.0.0.0/8x", 0);
	check_list("10.0.0.0/-1", 0);
	check_list("*, ", 0);
	check_list("a,,b", 0);
	check_list("!", 0);
	check_list("*.", 0);
	check_list("bad host", 0);
	check_list("ex ample.com", 0);
	check_list("http://example.com", 0);
	check(!fh_netacl_check_list(NULL, (char[100]) {0}, 100), "NULL list", "false", "true");
	/* a malformed list allows nothing */
	check_addr("*, 10.0.0.0/99", "127.0.0.1", 1);	/* matched before the bad entry */
	check_addr("10.0.0.0/99, *", "127.0.0.1", 0);
	check_host("bad host, *", "localhost", 0);

	printf("netacl: %d of %d checks pass\n", checks_run - checks_failed, checks_run);
	return checks_failed ? 1 : 0;
}
