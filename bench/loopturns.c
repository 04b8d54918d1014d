/*
 * bench/loopturns.c: an LD_PRELOAD probe of a process's main event loop. Each
 * turn is the time between epoll_wait returning on the main thread and that
 * thread calling it again: its wall time and the thread's own CPU time (less
 * sensitive to a loaded machine). Turns longer than LOOPTURNS_MS (default 5)
 * are appended to LOOPTURNS_OUT as "epoch_s wall_ms cpu_ms"; the longest and a
 * count over 10/20/50 ms go there at exit. No code of pvelab's is involved.
 * Build: cc -O2 -shared -fPIC -o loopturns.so bench/loopturns.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int (*real_wait)(int, struct epoll_event *, int, int);
static int out = -1;
static double thresh_ms = 5, last_wall, last_cpu, max_wall, max_cpu;
static long turns, over[3];

static double
clock_ms(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void
say(const char *fmt, double a, double b, double c)
{
	char line[128];
	int n = snprintf(line, sizeof(line), fmt, a, b, c);

	if (out >= 0 && n > 0)
		(void)!write(out, line, (size_t)n);
}

__attribute__((constructor)) static void
init(void)
{
	const char *path = getenv("LOOPTURNS_OUT"), *ms = getenv("LOOPTURNS_MS");

	real_wait = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
	if (ms)
		thresh_ms = strtod(ms, NULL);
	if (path)
		out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

__attribute__((destructor)) static void
fini(void)
{
	char line[160];
	int n = snprintf(line, sizeof(line),
			 "# %ld turns; longest %.1f ms wall, %.1f ms CPU; over 10/20/50 ms wall: "
			 "%ld/%ld/%ld\n",
			 turns, max_wall, max_cpu, over[0], over[1], over[2]);

	if (out >= 0 && n > 0)
		(void)!write(out, line, (size_t)n);
}

int
epoll_wait(int fd, struct epoll_event *ev, int max, int timeout)
{
	int main_thread = syscall(SYS_gettid) == getpid();
	int r;

	if (main_thread && last_wall > 0) {
		double wall = clock_ms(CLOCK_MONOTONIC) - last_wall;
		double cpu = clock_ms(CLOCK_THREAD_CPUTIME_ID) - last_cpu;

		turns++;
		if (wall > max_wall)
			max_wall = wall;
		if (cpu > max_cpu)
			max_cpu = cpu;
		over[0] += wall > 10;
		over[1] += wall > 20;
		over[2] += wall > 50;
		if (wall > thresh_ms)
			say("%.3f %.1f %.1f\n", clock_ms(CLOCK_REALTIME) / 1e3, wall, cpu);
	}
	r = real_wait(fd, ev, max, timeout);
	if (main_thread) {
		last_wall = clock_ms(CLOCK_MONOTONIC);
		last_cpu = clock_ms(CLOCK_THREAD_CPUTIME_ID);
	}
	return r;
}
