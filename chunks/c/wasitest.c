/* wasitest: exercises the edges of the WASI subset and prints what each returned, so the
 * kernel and the reference engine can be compared on them.
 *   wasitest errors        bad descriptors, bad pointers (raw WASI calls), missing files,
 *                          escapes from the preopened directory, writes, reading past the end
 *   wasitest ls DIR        the entries of DIR (opendir/readdir) with their sizes
 *   wasitest cat           standard input to standard output, then its length
 *   wasitest exit-deep N   calls itself N deep, then exit(7) from the bottom
 *   wasitest trap          executes `unreachable`
 *   wasitest oob           loads from beyond the end of linear memory
 *   wasitest env           the environment (environ), then getenv("ATOLL_GREETING")
 *   wasitest sleep MS      nanosleep(MS ms) (WASI poll_oneoff), checked on the monotonic clock
 *   wasitest poll          raw poll_oneoff: descriptors ready at once, clocks, bad input */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static void show(const char *what, long r) {
    printf("%-34s -> %ld (%s)\n", what, r, r < 0 ? strerror(errno) : "ok");
}

static void raw(const char *what, __wasi_errno_t e) { printf("%-34s -> errno %u\n", what, e); }

static int errors(void) {
    char buf[64];
    show("write(42)", write(42, "x", 1));
    show("read(42)", read(42, buf, sizeof buf));
    show("close(42)", close(42));
    show("open(missing.txt)", open("missing.txt", O_RDONLY));
    show("open(../escape)", open("../escape", O_RDONLY));
    show("open(/abs)", open("/etc/passwd", O_RDONLY));
    show("open(new.txt, O_CREAT|O_WRONLY)", open("new.txt", O_CREAT | O_WRONLY, 0644));
    show("open(forth, O_RDWR)", open("forth/countdown.fs", O_RDWR));
    show("mkdir(d)", mkdir("d", 0755));
    show("unlink(forth/countdown.fs)", unlink("forth/countdown.fs"));
    int fd = open("forth/countdown.fs", O_RDONLY);
    show("open(forth/countdown.fs)", fd >= 0 ? 0 : -1);
    struct stat st;
    show("fstat size", fstat(fd, &st) == 0 ? (long)st.st_size : -1);
    long total = 0, n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    show("read to the end (bytes)", total);
    show("read past the end", read(fd, buf, sizeof buf));
    show("lseek(100000, SEEK_SET)", (long)lseek(fd, 100000, SEEK_SET));
    show("read after seeking past the end", read(fd, buf, sizeof buf));
    show("lseek(-1, SEEK_SET)", (long)lseek(fd, -1, SEEK_SET));
    show("lseek(-10, SEEK_END)", (long)lseek(fd, -10, SEEK_END));
    show("write to a read-only file", write(fd, "x", 1));
    show("close", close(fd));
    show("close again", close(fd));
    show("lseek(stdout)", (long)lseek(1, 0, SEEK_CUR));
    show("opendir(forth/countdown.fs)", opendir("forth/countdown.fs") ? 0 : -1);
    /* Raw calls with pointers outside linear memory: EFAULT (21), never a crash. */
    __wasi_size_t got = 0;
    const __wasi_ciovec_t *far = (const __wasi_ciovec_t *)0xFFFFFFF0u;
    raw("fd_write(iovs past the end)", __wasi_fd_write(1, far, 1, &got));
    __wasi_ciovec_t bad_cbuf = {(const uint8_t *)0xFFFF0000u, 0x10000};
    raw("fd_write(buffer past the end)", __wasi_fd_write(1, &bad_cbuf, 1, &got));
    __wasi_iovec_t bad_buf = {(uint8_t *)0xFFFF0000u, 0x10000};
    __wasi_ciovec_t ok_buf = {(const uint8_t *)"", 0};
    raw("fd_write(result past the end)", __wasi_fd_write(1, &ok_buf, 1, (__wasi_size_t *)0xFFFFFFFEu));
    raw("random_get(past the end)", __wasi_random_get((uint8_t *)0xFFFFFF00u, 0x1000));
    raw("args_sizes_get(past the end)", __wasi_args_sizes_get((__wasi_size_t *)0xFFFFFFFCu, &got));
    raw("clock_time_get(bad clock)", __wasi_clock_time_get(99, 1, (__wasi_timestamp_t *)buf));
    raw("fd_prestat_get(stdout)", __wasi_fd_prestat_get(1, (__wasi_prestat_t *)buf));
    raw("fd_readdir(buffer past the end)", __wasi_fd_readdir(3, (uint8_t *)0xFFFFFF00u, 0x1000, 0, &got));
    raw("fd_read(bad descriptor)", __wasi_fd_read(99, &bad_buf, 1, &got));
    raw("poll_oneoff(no subscriptions)", __wasi_poll_oneoff(0, 0, 0, &got));
    raw("sched_yield", __wasi_sched_yield());
    uint8_t rnd[16];
    raw("random_get(16)", __wasi_random_get(rnd, sizeof rnd));
    return 0;
}

extern char **environ;

static int env(void) {
    int n = 0;
    for (char **e = environ; *e; e++, n++) printf("env[%d] %s\n", n, *e);
    const char *g = getenv("ATOLL_GREETING");
    printf("%d variables; ATOLL_GREETING=%s\n", n, g ? g : "(unset)");
    return 0;
}

static long long mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int sleep_ms(int ms) {
    long long start = mono_ns();
    struct timespec want = {ms / 1000, (long)(ms % 1000) * 1000000L};
    int r = nanosleep(&want, NULL);
    long long took = mono_ns() - start;
    printf("nanosleep(%d ms) -> %d; slept at least that long: %s\n", ms, r,
           took >= (long long)ms * 1000000LL ? "yes" : "no");
    return took >= (long long)ms * 1000000LL ? 0 : 2;
}

static void show_events(const char *what, __wasi_errno_t e, const __wasi_event_t *ev, __wasi_size_t n) {
    printf("%s -> errno %u, %u event(s)\n", what, e, e ? 0u : (unsigned)n);
    for (__wasi_size_t i = 0; e == 0 && i < n; i++)
        printf("  userdata %llu type %u error %u nbytes %llu\n", (unsigned long long)ev[i].userdata,
               ev[i].type, ev[i].error, (unsigned long long)ev[i].fd_readwrite.nbytes);
}

static int poll(void) {
    __wasi_subscription_t s[4];
    __wasi_event_t ev[4];
    __wasi_size_t n = 0;
    memset(s, 0, sizeof s);
    /* A long clock, standard input, standard output and a bad descriptor: all but the clock
     * are ready at once. */
    s[0].userdata = 10; s[0].u.tag = __WASI_EVENTTYPE_CLOCK;
    s[0].u.u.clock.id = __WASI_CLOCKID_MONOTONIC; s[0].u.u.clock.timeout = 60000000000ull;
    s[1].userdata = 11; s[1].u.tag = __WASI_EVENTTYPE_FD_READ; s[1].u.u.fd_read.file_descriptor = 0;
    s[2].userdata = 12; s[2].u.tag = __WASI_EVENTTYPE_FD_WRITE; s[2].u.u.fd_write.file_descriptor = 1;
    s[3].userdata = 13; s[3].u.tag = __WASI_EVENTTYPE_FD_READ; s[3].u.u.fd_read.file_descriptor = 42;
    show_events("poll(clock 60 s, stdin, stdout, fd 42)", __wasi_poll_oneoff(s, ev, 4, &n), ev, n);
    /* Two relative clocks: the shorter one ends the wait. */
    memset(s, 0, sizeof s);
    s[0].userdata = 20; s[0].u.tag = __WASI_EVENTTYPE_CLOCK;
    s[0].u.u.clock.id = __WASI_CLOCKID_MONOTONIC; s[0].u.u.clock.timeout = 60000000000ull;
    s[1].userdata = 21; s[1].u.tag = __WASI_EVENTTYPE_CLOCK;
    s[1].u.u.clock.id = __WASI_CLOCKID_MONOTONIC; s[1].u.u.clock.timeout = 3000000ull;
    long long start = mono_ns();
    __wasi_errno_t e = __wasi_poll_oneoff(s, ev, 2, &n);
    show_events("poll(clock 60 s, clock 3 ms)", e, ev, n);
    printf("  waited at least 3 ms: %s\n", mono_ns() - start >= 3000000LL ? "yes" : "no");
    /* An absolute realtime deadline in the past, and an unknown clock. */
    s[0].userdata = 30; s[0].u.u.clock.id = __WASI_CLOCKID_REALTIME; s[0].u.u.clock.timeout = 1;
    s[0].u.u.clock.flags = __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME;
    s[1].userdata = 31; s[1].u.u.clock.id = 99;
    show_events("poll(realtime 1 ns after 1970, clock 99)", __wasi_poll_oneoff(s, ev, 2, &n), ev, n);
    /* Bad input. */
    s[0].u.tag = 7;
    show_events("poll(unknown tag)", __wasi_poll_oneoff(s, ev, 1, &n), ev, n);
    show_events("poll(subscriptions past the end)",
                __wasi_poll_oneoff((const __wasi_subscription_t *)0xFFFFFFE0u, ev, 1, &n), ev, n);
    show_events("poll(events past the end)",
                __wasi_poll_oneoff(s, (__wasi_event_t *)0xFFFFFFF0u, 1, &n), ev, n);
    return 0;
}

static int ls(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { perror(dir); return 1; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0) { perror(path); continue; }
        printf("%c %8lld %s\n", S_ISDIR(st.st_mode) ? 'd' : '-', (long long)st.st_size, e->d_name);
    }
    closedir(d);
    return 0;
}

static int cat(void) {
    char buf[256];
    long total = 0, n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    printf("[%ld bytes]\n", total);
    return 0;
}

static int deep(int n) {
    volatile char frame[64];
    frame[0] = (char)n;
    if (n == 0) {
        printf("bottom reached, exiting with 7\n");
        exit(7);
    }
    return deep(n - 1) + frame[0];
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "errors";
    if (strcmp(mode, "errors") == 0) return errors();
    if (strcmp(mode, "ls") == 0) return ls(argc > 2 ? argv[2] : ".");
    if (strcmp(mode, "cat") == 0) return cat();
    if (strcmp(mode, "env") == 0) return env();
    if (strcmp(mode, "sleep") == 0) return sleep_ms(argc > 2 ? atoi(argv[2]) : 10);
    if (strcmp(mode, "poll") == 0) return poll();
    if (strcmp(mode, "exit-deep") == 0) return deep(argc > 2 ? atoi(argv[2]) : 1000);
    if (strcmp(mode, "trap") == 0) { printf("about to trap\n"); fflush(stdout); __builtin_trap(); }
    if (strcmp(mode, "oob") == 0) {
        printf("about to load past the end\n");
        fflush(stdout);
        volatile int *p = (volatile int *)0xFFFFFFF0u;
        return *p;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 64;
}
