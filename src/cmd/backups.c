/*
 * `pvelab backups [--missing]`: each guest's newest vzdump backup and its
 * age, read live from the storages that hold backups (plan/backups.c); with
 * --missing also the guests no backup job covers, as PVE reports them.
 */
#include "core/common.h"
#include "cmd/cmd.h"
#include "cmd/connect.h"
#include "core/json.h"
#include "plan/backups.h"

#include <time.h>

static const struct pl_opt opts[] = {
	{ "missing", 0, NULL,
	  "also list the guests no backup job covers (/cluster/backup-info/not-backed-up)" },
	{ NULL, 0, NULL, NULL },
};

enum { O_MISSING };

/* "3d 4h", "5h 2m", "12m", "40s" */
static void
age_text(long long s, char *out, size_t n)
{
	if (s >= 86400)
		snprintf(out, n, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, n, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, n, "%lldm", s / 60);
	else
		snprintf(out, n, "%llds", s);
}

static void
print_text(const struct pl_ctx *ctx, const json_t *res, bool missing)
{
	const json_t *g;
	size_t i;

	printf("%s%-8s %-20s %-16s %-8s %-5s %s%s\n", pl_color(ctx, PL_C_BOLD), "VMID", "NAME",
	       "NEWEST", "AGE", "COUNT", "ARCHIVE", pl_color(ctx, PL_C_RESET));
	json_array_foreach(json_object_get(res, "guests"), i, g) {
		char when[32] = "never", age[32] = "-";
		time_t t = (time_t)pl_json_int(g, "ctime", 0);
		struct tm tm;

		if (pl_json_str(g, "newest")) {
			if (localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
			age_text(pl_json_int(g, "age", 0), age, sizeof(age));
		}
		printf("%-8lld %-20s %s%-16s%s %-8s %-5lld %s\n", pl_json_int(g, "vmid", 0),
		       pl_json_str_or(g, "name", "-"),
		       pl_json_str(g, "newest") ? "" : pl_color(ctx, PL_C_YELLOW), when,
		       pl_json_str(g, "newest") ? "" : pl_color(ctx, PL_C_RESET), age,
		       pl_json_int(g, "count", 0), pl_json_str_or(g, "newest", "-"));
	}
	if (!missing)
		return;
	if (json_array_size(json_object_get(res, "not_backed_up")) == 0) {
		printf("\nEvery guest is covered by a backup job.\n");
		return;
	}
	printf("\n%sNot covered by any backup job:%s\n", pl_color(ctx, PL_C_YELLOW),
	       pl_color(ctx, PL_C_RESET));
	json_array_foreach(json_object_get(res, "not_backed_up"), i, g)
		printf("  %lld %s (%s)\n", pl_json_int(g, "vmid", 0),
		       pl_json_str_or(g, "name", "-"), pl_json_str_or(g, "type", "?"));
}

static int
run(struct pl_ctx *ctx, int argc, char **argv)
{
	struct pl_session s;
	struct pl_args a;
	json_t *res = NULL;
	const json_t *e;
	bool missing;
	char *err = NULL;
	size_t i;
	int r, rc = PL_EXIT_ERROR;

	if ((r = pl_args_parse(&a, &pl_cmd_backups, ctx, argc, argv)) != 0)
		return pl_args_exit(r);
	missing = pl_args_has(&a, O_MISSING);
	if (pl_session_open(&s, ctx, PL_NEED_API, &err) != 0) {
		pl_error("%s", err);
		goto out;
	}
	r = pl_backups_list(s.base, s.pve, missing, &res, &err);
	if (r != 0 && res && json_object_get(res, "guests") == NULL) {
		pl_error("%s", err);
		goto out;
	}
	json_array_foreach(json_object_get(res, "errors"), i, e)
		pl_warn(ctx, "cannot list the backups of %s", json_string_value(e));
	if (ctx->output == PL_OUT_JSON) {
		if (!missing)
			json_object_del(res, "not_backed_up");
		pl_print_json(json_incref(res));
	} else {
		print_text(ctx, res, missing && r == 0);
	}
	if (r != 0)
		pl_error("%s", err);
	rc = r == 0 ? PL_EXIT_OK : PL_EXIT_ERROR;
out:
	json_decref(res);
	free(err);
	pl_session_close(&s);
	return rc;
}

const struct pl_cmd pl_cmd_backups = {
	.name = "backups",
	.summary = "each guest's newest backup and its age",
	.usage = "[--missing]",
	.help = "Reads the backup content of every storage that holds backups (a shared one\n"
		"once) and shows, per guest, its newest vzdump archive, how old it is and how\n"
		"many there are; 'never' for a guest without any. --missing adds the guests\n"
		"that no backup job covers, as Proxmox reports them.",
	.opts = opts,
	.run = run,
	.flags = PL_CMD_MCP_READ,
};
