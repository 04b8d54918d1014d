/*
 * The simulator's QEMU guest agent inside a VM (agent: 1, running): an
 * in-memory file system per guest (file-write, file-read), exec of a small
 * documented set of commands with exec-status, and get-osinfo. Commands
 * (argv, no shell): true, false, echo, cat FILE, mkdir -p DIR, chmod MODE
 * FILE, mv [-f] SRC DST, rm -f FILE, and docker compose [-p NAME] [-f FILE]...
 * [--project-directory DIR] [--env-file FILE]... [--profile P]...
 * up|ps|down: up starts the compose files' services whose profiles are
 * enabled (a service whose image's tag is "broken" fails to pull, exit 1),
 * ps --format json lists them one JSON object a line as docker does, down
 * removes them. A service with a healthcheck: is "starting" until its first
 * probe (one interval, or --health-ms, after up), then "healthy", or
 * "unhealthy" after retries probes when its test is false or exit 1
 * (["CMD", "false"], "exit 1"...); the simulator runs no test. dd
 * of=FILE oflag=append conv=notrunc status=none appends its input to FILE
 * (pvelab's writes of files over file-write's 60 KiB). Anything else exits
 * 127. Every command ends at once.
 */
#include "core/common.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/yaml.h"
#include "sim/api.h"
#include "sim/internal.h"

#include <time.h>

#define AGENT_FILE_MAX ((size_t)16 << 20) /* file-read's largest count */

/* The guest's agent state, made on first use:
 * {"dirs":{path:true},"files":{path:{"data","mode"}},"procs":{pid:{...}},
 *  "projects":{name:[service states]},"pid":N} */
static json_t *
agent_state(struct pl_sim_guest *g)
{
	if (!g->agent) {
		const char *dirs[] = {
			"/", "/etc", "/opt", "/root", "/tmp", "/var", "/srv", "/home"
		};

		g->agent = json_pack("{s:{},s:{},s:{},s:{},s:i}", "dirs", "files", "procs",
				     "projects", "pid", 1000 + (int)(g->vmid % 1000));
		for (size_t i = 0; i < PL_ARRAY_LEN(dirs); i++)
			json_object_set_new(json_object_get(g->agent, "dirs"), dirs[i],
					    json_true());
	}
	return g->agent;
}

/* As PVE answers an agent call on a VM that cannot take it. */
static struct pl_sim_guest *
exec_guest(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = pl_sim_req_guest(r, false);
	const char *agent;

	if (!g)
		return NULL;
	agent = pl_json_str(g->conf, "agent");
	if (!agent || agent[0] == '0' || !strncmp(agent, "enabled=0", 9)) {
		pl_sim_fail(r, 500, "No QEMU guest agent configured");
		return NULL;
	}
	if (g->status != PL_SIM_RUNNING) {
		pl_sim_fail(r, 500, "VM %u is not running", g->vmid);
		return NULL;
	}
	return g;
}

static char *
parent_dir(const char *path)
{
	const char *s = strrchr(path, '/');

	if (!s || s == path)
		return pl_strdup("/");
	return pl_strndup(path, (size_t)(s - path));
}

static bool
dir_exists(json_t *a, const char *dir)
{
	return json_object_get(json_object_get(a, "dirs"), dir) != NULL;
}

static void
h_file_write(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = exec_guest(r);
	const char *file = pl_sim_p(r, "file"), *content = pl_sim_p(r, "content");
	char *dir;
	json_t *a, *old;

	if (!g)
		return;
	if (!file || !content) {
		pl_sim_fail(r, 400, "parameter verification failed");
		return;
	}
	if (!pl_sim_pbool(r, "encode", true)) {
		pl_sim_fail(r, 500,
			    "Agent error: the simulator takes file-write content with "
			    "encode=1 only");
		return;
	}
	a = agent_state(g);
	dir = parent_dir(file);
	if (!dir_exists(a, dir)) {
		pl_sim_fail(r, 500,
			    "Agent error: failed to open file '%s' (mode: 'w'): No such file or "
			    "directory",
			    file);
		free(dir);
		return;
	}
	free(dir);
	old = json_object_get(json_object_get(a, "files"), file);
	json_object_set_new(
		json_object_get(a, "files"), file,
		json_pack("{s:s,s:i}", "data", content, "mode",
			  old ? (int)json_integer_value(json_object_get(old, "mode")) : 0644));
	pl_sim_ok(r, json_null());
}

static void
h_file_read(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = exec_guest(r);
	const char *file = pl_sim_p(r, "file");
	const json_t *f;
	long long count = pl_sim_pint(r, "count", (long long)AGENT_FILE_MAX);
	size_t len;

	if (!g)
		return;
	f = json_object_get(json_object_get(agent_state(g), "files"), file ? file : "");
	if (!f) {
		pl_sim_fail(r, 500,
			    "Agent error: failed to open file '%s' (mode: 'r'): No such file or "
			    "directory",
			    file ? file : "");
		return;
	}
	len = strlen(pl_json_str_or(f, "data", ""));
	if (count < 0 || (size_t)count > len)
		count = (long long)len;
	if ((size_t)count < len)
		pl_sim_ok(r, json_pack("{s:s%,s:b}", "content", pl_json_str(f, "data"),
				       (size_t)count, "truncated", 1));
	else
		pl_sim_ok(r, json_pack("{s:s}", "content", pl_json_str(f, "data")));
}

/* --- the commands exec knows --- */

struct run {
	json_t *a; /* the guest's agent state */
	struct pl_buf out, err;
	int code;
	int health_ms; /* --health-ms */
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A compose duration ("30s", "1m30s", "500ms", "2h") in ms; dflt when
 * absent or not one. */
static long long
duration_ms(const json_t *v, long long dflt)
{
	const char *s = json_string_value(v);
	long long total = 0;

	if (!s || !*s)
		return dflt;
	while (*s) {
		char *end;
		double n = strtod(s, &end);

		if (end == s)
			return dflt;
		if (!strncmp(end, "ms", 2))
			total += (long long)n, end += 2;
		else if (*end == 's')
			total += (long long)(n * 1000), end++;
		else if (*end == 'm')
			total += (long long)(n * 60000), end++;
		else if (*end == 'h')
			total += (long long)(n * 3600000), end++;
		else
			return dflt;
		s = end;
	}
	return total;
}

/* Whether a healthcheck's test can only fail: false or exit 1, however
 * it is written (a string, or ["CMD"|"CMD-SHELL", ...]). */
static bool
test_fails(const json_t *test)
{
	const char *cmd = json_string_value(test);

	if (json_is_array(test)) {
		const char *k = json_string_value(json_array_get(test, 0));

		cmd = k && (!strcmp(k, "CMD") || !strcmp(k, "CMD-SHELL")) ?
			      json_string_value(json_array_get(test, 1)) :
			      k;
	}
	return cmd &&
	       (!strcmp(cmd, "false") || !strcmp(cmd, "exit 1") || !strcmp(cmd, "/bin/false"));
}

/* The services of the compose files named by -f (paths in the guest), with
 * the profiles each needs: [{"service","image","profiles":[]}]. */
static int
compose_services(struct run *x, json_t *fs, json_t **out)
{
	json_t *list = json_array(), *f;
	size_t i;

	json_array_foreach(fs, i, f) {
		const json_t *file =
			json_object_get(json_object_get(x->a, "files"), json_string_value(f));
		const char *k;
		json_t *doc, *svc;
		char *e = NULL;

		if (!file) {
			pl_buf_addf(&x->err, "open %s: no such file or directory\n",
				    json_string_value(f));
			json_decref(list);
			return 14;
		}
		doc = pl_yaml_load_string(json_string_value(f), pl_json_str(file, "data"),
					  strlen(pl_json_str(file, "data")), NULL, &e);
		if (!doc) {
			pl_buf_addf(&x->err, "%s\n", e ? e : "invalid compose file");
			free(e);
			json_decref(list);
			return 15;
		}
		json_object_foreach(json_object_get(doc, "services"), k, svc) {
			json_t *p = json_object_get(svc, "profiles");
			json_t *hc = json_object_get(svc, "healthcheck");

			json_array_append_new(
				list, json_pack("{s:s,s:s,s:o}", "service", k, "image",
						pl_json_str_or(svc, "image", k), "profiles",
						json_is_array(p) ? json_incref(p) : json_array()));
			if (json_is_object(hc) && !json_is_true(json_object_get(hc, "disable")))
				json_object_set(json_array_get(list, json_array_size(list) - 1),
						"healthcheck", hc);
		}
		json_decref(doc);
	}
	*out = list;
	return 0;
}

static bool
enabled(const json_t *svc, const json_t *profiles)
{
	const json_t *need = json_object_get(svc, "profiles"), *p, *q;
	size_t i, j;

	if (json_array_size(need) == 0)
		return true;
	json_array_foreach(need, i, p)
		json_array_foreach(profiles, j, q)
			if (json_equal(p, q))
				return true;
	return false;
}

static void
docker_compose(struct run *x, json_t *argv)
{
	const char *project = NULL, *dir = NULL, *verb = NULL;
	json_t *files = json_array(), *profiles = json_array(), *svcs = NULL, *v, *projects;
	size_t i, n = json_array_size(argv);

	for (i = 2; i < n; i++) {
		const char *s = json_string_value(json_array_get(argv, i));
		const char *next =
			i + 1 < n ? json_string_value(json_array_get(argv, i + 1)) : NULL;

		if (!strcmp(s, "-p") && next)
			project = next, i++;
		else if (!strcmp(s, "-f") && next)
			json_array_append_new(files, json_string(next)), i++;
		else if (!strcmp(s, "--project-directory") && next)
			dir = next, i++;
		else if (!strcmp(s, "--env-file") && next)
			i++;
		else if (!strcmp(s, "--profile") && next)
			json_array_append_new(profiles, json_string(next)), i++;
		else if (s[0] != '-' && !verb)
			verb = s;
	}
	projects = json_object_get(x->a, "projects");
	if (!project || !verb) {
		pl_buf_addstr(&x->err,
			      "the simulator's docker compose needs -p NAME and a command\n");
		x->code = 1;
		goto out;
	}
	if (!strcmp(verb, "down")) {
		json_object_del(projects, project);
		json_object_del(json_object_get(x->a, "health"), project);
		pl_buf_addf(&x->err, " Network %s_default  Removed\n", project);
		x->code = 0;
		goto out;
	}
	if (!strcmp(verb, "ps")) {
		json_t *health = json_object_get(json_object_get(x->a, "health"), project);

		json_array_foreach(json_object_get(projects, project), i, v) {
			const json_t *h = json_object_get(health, pl_json_str_or(v, "Service", ""));
			char *line;

			/* a healthcheck's probe has come: its result is the state */
			if (h && !strcmp(pl_json_str_or(v, "Health", ""), "starting") &&
			    now_ms() >= pl_json_int(h, "at", 0))
				json_object_set(v, "Health", json_object_get(h, "result"));
			line = json_dumps(v, JSON_COMPACT);
			pl_buf_addf(&x->out, "%s\n", line);
			free(line);
		}
		x->code = 0;
		goto out;
	}
	if (strcmp(verb, "up") != 0) {
		pl_buf_addf(&x->err, "unknown docker compose command: %s\n", verb);
		x->code = 1;
		goto out;
	}
	if (json_array_size(files) == 0 && dir)
		json_array_append_new(files, json_sprintf("%s/compose.yaml", dir));
	if ((x->code = compose_services(x, files, &svcs)) != 0)
		goto out;
	{
		json_t *state = json_array(), *health = json_object();

		json_array_foreach(svcs, i, v) {
			const char *image = pl_json_str(v, "image");
			const char *tag = strrchr(image, ':');

			if (!enabled(v, profiles))
				continue;
			if (tag && !strcmp(tag + 1, "broken")) {
				pl_buf_addf(
					&x->err,
					" %s Error manifest for %s not found: manifest unknown\n"
					"Error response from daemon: manifest for %s not found: "
					"manifest unknown\n",
					pl_json_str(v, "service"), image, image);
				x->code = 1;
				json_decref(state);
				json_decref(health);
				goto out;
			}
			json_array_append_new(state,
					      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "Name",
							pl_json_str(v, "service"), "Service",
							pl_json_str(v, "service"), "Project",
							project, "Image", image, "State", "running",
							"Health", "", "ExitCode", 0));
			{
				json_t *last = json_array_get(state, json_array_size(state) - 1);
				char *name =
					pl_asprintf("%s-%s-1", project, pl_json_str(v, "service"));

				json_object_set_new(last, "Name", json_string(name));
				pl_buf_addf(&x->err, " Container %s  Started\n", name);
				free(name);
			}
			if (json_object_get(v, "healthcheck")) {
				const json_t *hc = json_object_get(v, "healthcheck");
				long long every =
					x->health_ms > 0 ?
						x->health_ms :
						duration_ms(json_object_get(hc, "interval"), 30000);
				long long retries =
					json_integer_value(json_object_get(hc, "retries"));
				bool fails = test_fails(json_object_get(hc, "test"));

				if (retries <= 0)
					retries = 3;
				json_object_set_new(
					json_array_get(state, json_array_size(state) - 1), "Health",
					json_string("starting"));
				json_object_set_new(
					health, pl_json_str(v, "service"),
					json_pack("{s:I,s:s}", "at",
						  (json_int_t)(now_ms() +
							       every * (fails ? retries : 1)),
						  "result", fails ? "unhealthy" : "healthy"));
			}
		}
		json_object_set_new(projects, project, state);
		if (!json_object_get(x->a, "health"))
			json_object_set_new(x->a, "health", json_object());
		json_object_set_new(json_object_get(x->a, "health"), project, health);
		x->code = 0;
	}
out:
	json_decref(svcs);
	json_decref(files);
	json_decref(profiles);
}

static void
run_argv(struct run *x, json_t *argv, const char *input)
{
	size_t n = json_array_size(argv);
	const char *cmd = json_string_value(json_array_get(argv, 0));
	const char *a1 = n > 1 ? json_string_value(json_array_get(argv, 1)) : NULL;
	const char *a2 = n > 2 ? json_string_value(json_array_get(argv, 2)) : NULL;
	const char *a3 = n > 3 ? json_string_value(json_array_get(argv, 3)) : NULL;
	json_t *files = json_object_get(x->a, "files"), *f;

	x->code = 0;
	if (!cmd) {
		x->code = 127;
	} else if (!strcmp(cmd, "true")) {
	} else if (!strcmp(cmd, "false")) {
		x->code = 1;
	} else if (!strcmp(cmd, "echo")) {
		for (size_t i = 1; i < n; i++)
			pl_buf_addf(&x->out, "%s%s", i > 1 ? " " : "",
				    json_string_value(json_array_get(argv, i)));
		pl_buf_addch(&x->out, '\n');
	} else if (!strcmp(cmd, "cat") && a1) {
		if ((f = json_object_get(files, a1)))
			pl_buf_addstr(&x->out, pl_json_str(f, "data"));
		else
			pl_buf_addf(&x->err, "cat: %s: No such file or directory\n", a1),
				x->code = 1;
	} else if (!strcmp(cmd, "cat") && input) {
		pl_buf_addstr(&x->out, input);
	} else if (!strcmp(cmd, "mkdir") && a1 && !strcmp(a1, "-p") && a2) {
		char *p = pl_strdup(a2);

		for (char *s = p + 1;; s++)
			if (*s == '/' || !*s) {
				char c = *s;

				*s = '\0';
				json_object_set_new(json_object_get(x->a, "dirs"), p, json_true());
				if (!(*s = c))
					break;
			}
		free(p);
	} else if (!strcmp(cmd, "chmod") && a1 && a2) {
		char *end;
		long mode = strtol(a1, &end, 8);

		if (*end || !(f = json_object_get(files, a2)))
			pl_buf_addf(&x->err,
				    "chmod: cannot access '%s': No such file or directory\n", a2),
				x->code = 1;
		else
			json_object_set_new(f, "mode", json_integer(mode));
	} else if (!strcmp(cmd, "mv") && a1) {
		const char *src = !strcmp(a1, "-f") ? a2 : a1, *dst = !strcmp(a1, "-f") ? a3 : a2;

		if (!src || !dst || !(f = json_object_get(files, src))) {
			pl_buf_addf(&x->err, "mv: cannot stat '%s': No such file or directory\n",
				    src ? src : "");
			x->code = 1;
		} else {
			json_object_set(files, dst, f);
			json_object_del(files, src);
		}
	} else if (!strcmp(cmd, "rm") && a1 && !strcmp(a1, "-f") && a2) {
		json_object_del(files, a2);
	} else if (!strcmp(cmd, "dd") && a1 && !strncmp(a1, "of=", 3) && n == 5 &&
		   !strcmp(a2, "oflag=append") && !strcmp(a3, "conv=notrunc") &&
		   !strcmp(json_string_value(json_array_get(argv, 4)), "status=none")) {
		if (!(f = json_object_get(files, a1 + 3))) {
			pl_buf_addf(&x->err, "dd: failed to open '%s': No such file or directory\n",
				    a1 + 3);
			x->code = 1;
		} else {
			char *joined = pl_asprintf("%s%s", pl_json_str_or(f, "data", ""),
						   input ? input : "");

			json_object_set_new(f, "data", json_string(joined));
			free(joined);
		}
	} else if (!strcmp(cmd, "docker") && a1 && !strcmp(a1, "compose")) {
		docker_compose(x, argv);
	} else {
		pl_buf_addf(&x->err, "%s: command not found\n", cmd);
		x->code = 127;
	}
}

static void
h_exec(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = exec_guest(r);
	json_t *cmd = json_object_get(r->params, "command"), *argv, *a;
	struct run x = { 0 };
	int pid;

	if (!g)
		return;
	if (json_is_string(cmd))
		argv = json_pack("[O]", cmd);
	else if (json_is_array(cmd) && json_array_size(cmd) > 0)
		argv = json_incref(cmd);
	else {
		pl_sim_fail(r, 400, "parameter verification failed");
		return;
	}
	a = agent_state(g);
	x.a = a;
	x.health_ms = r->sim->opts.health_ms;
	pl_buf_init(&x.out, (size_t)16 << 20);
	pl_buf_init(&x.err, (size_t)16 << 20);
	run_argv(&x, argv, pl_sim_p(r, "input-data"));
	pid = (int)json_integer_value(json_object_get(a, "pid")) + 1;
	json_object_set_new(a, "pid", json_integer(pid));
	{
		json_t *st = json_pack("{s:i,s:i}", "exited", 1, "exitcode", x.code);
		char key[24];

		if (x.out.len)
			json_object_set_new(st, "out-data", json_string(x.out.data));
		if (x.err.len)
			json_object_set_new(st, "err-data", json_string(x.err.data));
		snprintf(key, sizeof key, "%d", pid);
		json_object_set_new(json_object_get(a, "procs"), key, st);
	}
	pl_buf_release(&x.out);
	pl_buf_release(&x.err);
	json_decref(argv);
	pl_sim_ok(r, json_pack("{s:i}", "pid", pid));
}

static void
h_exec_status(struct pl_sim_req *r)
{
	struct pl_sim_guest *g = exec_guest(r);
	const char *pid = pl_sim_p(r, "pid");
	json_t *st;

	if (!g)
		return;
	st = json_object_get(json_object_get(agent_state(g), "procs"), pid ? pid : "");
	if (!st) {
		pl_sim_fail(r, 500, "Agent error: Invalid parameter 'pid'");
		return;
	}
	pl_sim_ok(r, json_incref(st));
	/* qemu-ga forgets a process once its exit was read */
	json_object_del(json_object_get(g->agent, "procs"), pid);
}

static void
h_osinfo(struct pl_sim_req *r)
{
	if (!exec_guest(r))
		return;
	pl_sim_ok(r, json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}}", "result", "id", "debian",
			       "kernel-release", "6.1.0-28-amd64", "kernel-version",
			       "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", "machine",
			       "x86_64", "name", "Debian GNU/Linux", "pretty-name",
			       "Debian GNU/Linux 12 (bookworm)", "version", "12 (bookworm)",
			       "version-id", "12"));
}

#define Q "/nodes/{node}/qemu"

const struct pl_sim_route_def pl_sim_guestexec_routes[] = {
	{ PL_SIM_POST, Q "/{vmid}/agent/file-write", h_file_write, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/agent/file-read", h_file_read, false, 0 },
	{ PL_SIM_POST, Q "/{vmid}/agent/exec", h_exec, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/agent/exec-status", h_exec_status, false, 0 },
	{ PL_SIM_GET, Q "/{vmid}/agent/get-osinfo", h_osinfo, false, 0 },
	{ 0, NULL, NULL, false, 0 },
};
