/*
 * The first include of every pvelab source file: the system headers nearly all
 * of them need, then the banned libc calls (after the headers that declare them).
 */
#ifndef PL_CORE_COMMON_H
#define PL_CORE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/banned.h"

#define PL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PL_UNUSED(x) ((void)(x))

#endif
