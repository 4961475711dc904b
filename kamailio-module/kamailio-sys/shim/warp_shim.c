#include "warp_shim.h"

#include <stdio.h>

#include "core/dprint.h"
#include "core/mem/shm.h"

void *warp_shm_malloc(size_t size)
{
	return shm_malloc(size);
}

void warp_shm_free(void *p)
{
	shm_free(p);
}

void warp_log(int level, const char *file, int line, const char *msg)
{
	char prefix[256];

	/* LOC_INFO would name this shim; name the Rust caller instead. */
	snprintf(prefix, sizeof(prefix), "%s [%s:%d]: ", LOG_MNAME, file, line);
	LOG_FN(DEFAULT_FACILITY, level, prefix, "%s\n", msg);
}

int warp_log_enabled(int level)
{
	return is_printable(level);
}
