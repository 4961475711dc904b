/* Functions wrapping the parts of Kamailio's API that exist only as macros (memory
 * allocators, locks, logging): compiled with the installed binary's defines so they
 * expand exactly as they do inside Kamailio's own modules. */
#ifndef WARP_SHIM_H
#define WARP_SHIM_H

#include <stddef.h>
#include "core/locking.h"

/* shm_malloc/shm_free: memory shared by all Kamailio processes (allocate before fork). */
void *warp_shm_malloc(size_t size);
void warp_shm_free(void *p);

/* lock_alloc + lock_init / lock_destroy + lock_dealloc / lock_get / lock_release. */
gen_lock_t *warp_lock_new(void);
void warp_lock_free(gen_lock_t *lock);
void warp_lock_get(gen_lock_t *lock);
void warp_lock_release(gen_lock_t *lock);

/* LM_GEN1(level, "%s\n", msg) as if written at file:line: logs through the core's
 * logging (stderr, syslog or structured), honouring the module's debug level. */
void warp_log(int level, const char *file, int line, const char *msg);
/* Whether `level` (L_ERR, L_DBG, ...) is currently enabled for this module. */
int warp_log_enabled(int level);

#endif
