/*-------------------------------------------------------------------------
 *
 * check.h
 *	  The check() of the unit tests of pure C files: counts checks, prints
 *	  "<CHECK_NAME>: FAIL <what>" with what was expected and what came back
 *	  (control and non-ASCII bytes escaped).  Define CHECK_NAME before
 *	  including it; report with checks_run and checks_failed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FH_UNIT_CHECK_H
#define FH_UNIT_CHECK_H

#include <stdio.h>

#ifndef CHECK_NAME
#error "define CHECK_NAME (the prefix of FAIL lines) before including check.h"
#endif

static int	checks_run;
static int	checks_failed;

/* s with control and non-ASCII bytes escaped, for FAIL lines */
static const char *
show(char *buf, size_t size, const char *s)
{
	size_t		n = 0;

	if (s == NULL)
		return "(null)";
	for (; *s && n + 5 < size; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c < 0x20 || c >= 0x7f)
			n += snprintf(buf + n, size - n, "\\x%02x", c);
		else
			buf[n++] = (char) c;
	}
	if (*s)
		n += snprintf(buf + n, size - n, "...");
	buf[n] = '\0';
	return buf;
}

static void
check(int ok, const char *what, const char *expected, const char *got)
{
	char		b1[200],
				b2[400],
				b3[400];

	checks_run++;
	if (ok)
		return;
	checks_failed++;
	printf(CHECK_NAME ": FAIL %s\n", show(b1, sizeof(b1), what));
	if (expected || got)
		printf("    expected: %s\n    got:      %s\n",
			   show(b2, sizeof(b2), expected), show(b3, sizeof(b3), got));
}

#endif							/* FH_UNIT_CHECK_H */
