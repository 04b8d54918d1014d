/*
 * The state store's numbered migrations (SQL text), applied in order by
 * state.c inside one transaction each, with PRAGMA user_version as the counter.
 */
#ifndef PL_STATE_MIGRATIONS_H
#define PL_STATE_MIGRATIONS_H

/* How many migrations exist (the latest schema version). */
int pl_state_migration_count(void);
/* SQL of migration n (1-based), or NULL. */
const char *pl_state_migration(int n);
/* The same for PostgreSQL (its types; caller frees), or NULL. */
char *pl_state_migration_pg(int n);

#endif
