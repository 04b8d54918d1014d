/*
 * Unbounded or ambiguous libc calls that must not be used in pvelab: any use
 * fails to compile. Use pl_buf, snprintf or strtol-based helpers instead.
 */
#ifndef PL_CORE_BANNED_H
#define PL_CORE_BANNED_H

#define PL_BANNED(func) sorry_##func##_is_banned_in_pvelab

#undef strcpy
#define strcpy(x, y) PL_BANNED(strcpy)
#undef strcat
#define strcat(x, y) PL_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) PL_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) PL_BANNED(strncat)
#undef sprintf
#define sprintf(...) PL_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) PL_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) PL_BANNED(strtok)
#undef atoi
#define atoi(x) PL_BANNED(atoi)
#undef atol
#define atol(x) PL_BANNED(atol)
#undef gets
#define gets(x) PL_BANNED(gets)

#endif
