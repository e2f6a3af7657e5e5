/*
 * asan_initfirst.c: preloaded beside gcc's ASan runtime into the servers of
 * test/run --sanitize (test/pgcluster.py builds it), so that ASan
 * initializes before any other library's constructor runs.
 *
 * Why: postgres links libgpg-error (through libgcrypt), whose constructor
 * calls bindtextdomain().  That is the process's first malloc(), so ASan
 * initializes inside it, and its initialization calls dlerror(), which
 * takes the gettext lock bindtextdomain() holds: the server hangs before
 * main().  -z initfirst runs this constructor before every other one.
 */
extern void __asan_init(void);

__attribute__((constructor))
static void
asan_initfirst(void)
{
	__asan_init();
}
