/* Functions wrapping the parts of Kamailio's API that exist only as macros (memory
 * allocator, logging): compiled with the installed binary's defines so they
 * expand exactly as they do inside Kamailio's own modules. */
#ifndef WARP_SHIM_H
#define WARP_SHIM_H

#include <stddef.h>

/* shm_malloc/shm_free: memory shared by all Kamailio processes (allocate before fork). */
void *warp_shm_malloc(size_t size);
void warp_shm_free(void *p);

/* LM_GEN1(level, "%s\n", msg) as if written at file:line: logs through the core's
 * logging (stderr, syslog or structured), honouring the module's debug level. */
void warp_log(int level, const char *file, int line, const char *msg);
/* Whether `level` (L_ERR, L_DBG, ...) is currently enabled for this module. */
int warp_log_enabled(int level);

#endif
