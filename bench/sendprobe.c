/* sendprobe.c - does io_uring make tickgate's fan-out sends cheaper?
 *
 * A standalone measurement (issue 21), not part of the server or `make test`.
 * N loopback TCP pairs; a sender thread pinned to CPU 0 writes, in rounds,
 * K ~120-byte price_update messages to each of the N sending sockets
 * (TCP_NODELAY, non-blocking, MSG_NOSIGNAL|MSG_DONTWAIT, like
 * conn_send_now); a receiver thread pinned to CPU 1 drains the N receiving
 * sockets with epoll, like a load generator. Modes:
 *   send     one send() per socket per round (K=1), or one sendmsg() with K
 *            iovecs when -k > 1: tickgate's path today
 *   uring    one io_uring_submit per round carrying N SQEs: IORING_OP_SEND
 *            (K=1) or IORING_OP_SENDMSG with K iovecs (K>1); every CQE is
 *            reaped before the round's buffers are reused; -f adds what a
 *            server would tune: registered files (IOSQE_FIXED_FILE, no fd
 *            lookup per send) and IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN
 * When io_uring_queue_init fails (EPERM from a sandbox's seccomp profile,
 * ENOSYS, or kernel.io_uring_disabled) the probe says so and runs `send`:
 * the fallback tickgate would take at start. --deny-uring installs a seccomp
 * filter that makes io_uring_setup fail with EPERM, to show that path.
 *
 * Measured: the sender thread's CPU (CLOCK_THREAD_CPUTIME_ID) per message
 * and per send, the receiver's, io_uring's own kernel threads (iou-wrk-*
 * and iou-sqp-* in /proc/self/task, which run work punted off the submitting
 * thread) and the process (getrusage); per round, the fan-out latency from
 * the round's start until the receiver has seen every socket's messages.
 * Rounds are paced (-r rounds/s) or flat out (-r 0: the next round starts
 * when the one WINDOW rounds back has been delivered). -b makes the
 * receiver poll without sleeping: on loopback the sender's send runs the
 * receiving side too, waking the receiver included, and -b takes that
 * wake-up out of the sender's cost.
 *
 * Build: make build/sendprobe      Run: build/sendprobe --help
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_K       4
#define MSG_LEN     120
#define WINDOW      4          /* flat out: rounds in flight */
#define MAX_ROUNDS  (1u << 20)
#define MAX_IOU     64         /* io_uring kernel threads tracked */

static int n_socks = 1000, k_msgs = 1, seconds = 5, tuned, busy_rx;
static double rate = 50;
static const char *mode = "send";
static int *tx, *rx;                       /* sending / receiving fds */
static uint64_t *t_start, *t_done;         /* per round, ns (monotonic) */
static _Atomic unsigned *done_socks;       /* per round: sockets complete */
static _Atomic unsigned rounds_done;       /* rounds fully delivered, in order */
static _Atomic int stop_rx;
static char msgs[2][MAX_K][MSG_LEN];       /* double-buffered by round */

static uint64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        fprintf(stderr, "sendprobe: cannot pin to CPU %d (runs unpinned)\n", cpu);
}

/* A price_update-like JSON payload of exactly MSG_LEN bytes (padded). */
static void fill_msg(char *m, unsigned round, int j) {
    int n = snprintf(m, MSG_LEN,
                     "{\"type\":\"price_update\",\"symbol\":\"BTC-USD\",\"seq\":%u,"
                     "\"price\":\"%u.%02d\",\"size\":\"0.25\",\"ts\":%u}",
                     round * MAX_K + (unsigned)j, 60000 + round % 1000, j, round);
    memset(m + n, ' ', (size_t)(MSG_LEN - n - 1));
    m[MSG_LEN - 1] = '\n';
}

/* N connected pairs over one loopback listener. */
static void open_pairs(void) {
    struct rlimit rl = {.rlim_cur = (rlim_t)n_socks * 2 + 64, .rlim_max = (rlim_t)n_socks * 2 + 64};
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    if (cur.rlim_cur < rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit(RLIMIT_NOFILE)");
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0)
        die("listener");
    tx = calloc((size_t)n_socks, sizeof *tx);
    rx = calloc((size_t)n_socks, sizeof *rx);
    for (int i = 0; i < n_socks; i++) {
        int one = 1;
        tx[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (tx[i] < 0 || connect(tx[i], (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        setsockopt(tx[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rx[i] = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
        if (rx[i] < 0)
            die("accept");
        if (fcntl(tx[i], F_SETFL, O_NONBLOCK) != 0)
            die("fcntl");
    }
    close(ls);
}

/* Drains every receiving socket; a round is delivered when each socket has
 * received its K messages of it (TCP may merge rounds into one read). */
static void *receiver(void *arg) {
    (void)arg;
    pin(1);
    int ep = epoll_create1(0);
    uint64_t *got = calloc((size_t)n_socks, sizeof *got);
    unsigned *seen = calloc((size_t)n_socks, sizeof *seen);
    const uint64_t per_round = (uint64_t)MSG_LEN * (uint64_t)k_msgs;
    for (int i = 0; i < n_socks; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, rx[i], &ev) != 0)
            die("epoll_ctl");
    }
    static char buf[65536];
    struct epoll_event evs[256];
    unsigned next_done = 0;
    while (!atomic_load(&stop_rx)) {
        int n = epoll_wait(ep, evs, 256, busy_rx ? 0 : 50);  /* -b: never sleeps */
        for (int e = 0; e < n; e++) {
            uint32_t i = evs[e].data.u32;
            ssize_t r;
            while ((r = recv(rx[i], buf, sizeof buf, 0)) > 0)
                got[i] += (uint64_t)r;
            while (got[i] >= (uint64_t)(seen[i] + 1) * per_round) {
                unsigned rd = seen[i]++;
                if (atomic_fetch_add(&done_socks[rd], 1) + 1 == (unsigned)n_socks)
                    t_done[rd] = now_ns(CLOCK_MONOTONIC);
            }
        }
        while (next_done < MAX_ROUNDS && atomic_load(&done_socks[next_done]) == (unsigned)n_socks)
            next_done++;
        atomic_store(&rounds_done, next_done);
    }
    free(got);
    free(seen);
    close(ep);
    return NULL;
}

/* CPU of io_uring's kernel threads, per thread (they may exit when idle:
 * samples keep each one's last value). */
static struct { pid_t tid; uint64_t ns; char comm[20]; } iou[MAX_IOU];
static int n_iou;

static void sample_iou_threads(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    long hz = sysconf(_SC_CLK_TCK);
    while (d && (de = readdir(d)) != NULL) {
        char path[300], line[512], comm[20] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[len] = 0;
        char *l = strchr(line, '('), *r = strrchr(line, ')');
        if (!l || !r || r - l - 1 >= (long)sizeof comm)
            continue;
        memcpy(comm, l + 1, (size_t)(r - l - 1));
        if (strncmp(comm, "iou-", 4) != 0)
            continue;
        unsigned long ut = 0, st = 0;  /* fields 14 and 15 */
        if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        pid_t tid = (pid_t)atoi(de->d_name);
        int j = 0;
        while (j < n_iou && iou[j].tid != tid)
            j++;
        if (j == n_iou && n_iou < MAX_IOU)
            n_iou++;
        if (j < n_iou) {
            iou[j].tid = tid;
            iou[j].ns = (uint64_t)(ut + st) * (1000000000u / (uint64_t)hz);
            snprintf(iou[j].comm, sizeof iou[j].comm, "%s", comm);
        }
    }
    if (d)
        closedir(d);
}

static struct io_uring ring;
static struct iovec iovs[2][MAX_K];
static struct msghdr mh[2];
static uint64_t short_sends, failed_sends;

static void account(ssize_t r) {
    if (r < 0)
        failed_sends++;
    else if ((size_t)r < (size_t)MSG_LEN * (size_t)k_msgs)
        short_sends++;
}

static void round_send(int b) {
    for (int i = 0; i < n_socks; i++) {
        ssize_t r;
        do
            r = k_msgs == 1 ? send(tx[i], msgs[b][0], MSG_LEN, MSG_NOSIGNAL | MSG_DONTWAIT)
                            : sendmsg(tx[i], &mh[b], MSG_NOSIGNAL | MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        account(r);
    }
}

/* N SQEs, submitted in as few io_uring_enter calls as the SQ allows (one
 * when it holds N); the buffers are reused only after every CQE is in. */
static unsigned uring_enters;

static void round_uring(int b) {
    int pending = 0;
    for (int i = 0; i < n_socks; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        if (!sqe) {
            io_uring_submit(&ring);
            uring_enters++;
            sqe = io_uring_get_sqe(&ring);
        }
        int fd = tuned ? i : tx[i];  /* -f: the index in the registered table */
        if (k_msgs == 1)
            io_uring_prep_send(sqe, fd, msgs[b][0], MSG_LEN, MSG_NOSIGNAL | MSG_DONTWAIT);
        else
            io_uring_prep_sendmsg(sqe, fd, &mh[b], MSG_NOSIGNAL | MSG_DONTWAIT);
        if (tuned)
            sqe->flags |= IOSQE_FIXED_FILE;
        pending++;
    }
    io_uring_submit(&ring);
    uring_enters++;
    while (pending > 0) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_peek_cqe(&ring, &cqe);
        if (rc == -EAGAIN) {
            rc = io_uring_wait_cqe(&ring, &cqe);
            uring_enters++;
        }
        if (rc < 0) {
            errno = -rc;
            die("io_uring_wait_cqe");
        }
        account(cqe->res < 0 ? -1 : cqe->res);
        io_uring_cqe_seen(&ring, cqe);
        pending--;
    }
}

/* Makes io_uring_setup fail with EPERM, as Docker's default profile does. */
static void deny_uring(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        die("seccomp");
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    puts("usage: sendprobe [-m send|uring] [-n sockets=1000] [-k msgs per socket per round=1 (1-4)]\n"
         "                 [-r rounds/s=50, 0 = flat out] [-t seconds=5] [-f: uring tuned]\n"
         "                 [-b: receiver polls, never sleeps] [--deny-uring]");
    exit(2);
}

int main(int argc, char **argv) {
    int deny = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--deny-uring")) deny = 1;
        else if (!strcmp(argv[i], "-f")) tuned = 1;
        else if (!strcmp(argv[i], "-b")) busy_rx = 1;
        else if (!v) usage();
        else if (!strcmp(argv[i], "-m")) mode = argv[++i];
        else if (!strcmp(argv[i], "-n")) n_socks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k")) k_msgs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r")) rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "-t")) seconds = atoi(argv[++i]);
        else usage();
    }
    if (n_socks < 1 || n_socks > 30000 || k_msgs < 1 || k_msgs > MAX_K || rate < 0 ||
        seconds < 1 || seconds > 600 || (strcmp(mode, "send") && strcmp(mode, "uring")))
        usage();
    if (deny)
        deny_uring();
    int use_uring = !strcmp(mode, "uring");
    const char *label = use_uring ? (tuned ? "uring-f" : "uring") : "send";
    if (use_uring) {
        struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = 2u * (unsigned)n_socks};
        if (tuned)
            p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        unsigned entries = (unsigned)n_socks < 4096 ? (unsigned)n_socks : 4096;
        int rc = io_uring_queue_init_params(entries, &ring, &p);
        if (rc < 0) {
            fprintf(stderr, "sendprobe: io_uring unavailable (io_uring_queue_init: %s): "
                    "falling back to send/sendmsg\n", strerror(-rc));
            use_uring = 0;
            label = "send(fallback)";
        }
    }
    t_start = calloc(MAX_ROUNDS, sizeof *t_start);
    t_done = calloc(MAX_ROUNDS, sizeof *t_done);
    done_socks = calloc(MAX_ROUNDS, sizeof *done_socks);
    for (int b = 0; b < 2; b++) {
        for (int j = 0; j < MAX_K; j++)
            iovs[b][j] = (struct iovec){.iov_base = msgs[b][j], .iov_len = MSG_LEN};
        mh[b] = (struct msghdr){.msg_iov = iovs[b], .msg_iovlen = (size_t)k_msgs};
    }
    open_pairs();
    if (use_uring && tuned) {
        int rc = io_uring_register_files(&ring, tx, (unsigned)n_socks);
        if (rc < 0) {
            errno = -rc;
            die("io_uring_register_files");
        }
    }
    pthread_t rt;
    pthread_create(&rt, NULL, receiver, NULL);
    clockid_t rx_clock;
    pthread_getcpuclockid(rt, &rx_clock);
    pin(0);

    double load0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (!la || fscanf(la, "%lf", &load0) != 1)
        load0 = -1;
    if (la)
        fclose(la);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), rx0 = now_ns(rx_clock);
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), end = t0 + (uint64_t)seconds * 1000000000u;
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    unsigned r = 0;
    for (; r < MAX_ROUNDS; r++) {
        uint64_t due = t0 + (uint64_t)r * period;
        if (period) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u), .tv_nsec = (long)(due % 1000000000u)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        } else {
            struct timespec nap = {.tv_nsec = 20000};  /* off the CPU: not the sender's cost */
            while (r >= WINDOW && atomic_load(&rounds_done) < r - WINDOW + 1)
                nanosleep(&nap, NULL);
        }
        uint64_t t = now_ns(CLOCK_MONOTONIC);
        if (t >= end)
            break;
        int b = (int)(r & 1);
        for (int j = 0; j < k_msgs; j++)
            fill_msg(msgs[b][j], r, j);
        t_start[r] = period ? due : t;
        if (use_uring)
            round_uring(b);
        else
            round_send(b);
        if ((r & 63) == 0)
            sample_iou_threads();
    }
    uint64_t cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t elapsed = now_ns(CLOCK_MONOTONIC) - t0;
    unsigned rounds = r;
    uint64_t wait_until = now_ns(CLOCK_MONOTONIC) + 2000000000u;
    while (atomic_load(&rounds_done) < rounds && now_ns(CLOCK_MONOTONIC) < wait_until)
        usleep(1000);
    uint64_t rx1 = now_ns(rx_clock);
    sample_iou_threads();
    getrusage(RUSAGE_SELF, &ru1);
    atomic_store(&stop_rx, 1);
    pthread_join(rt, NULL);

    /* latency over the delivered rounds, the first 5% left out (warm-up) */
    unsigned delivered = atomic_load(&rounds_done), skip = delivered / 20, nl = 0;
    uint64_t *lat = calloc(delivered + 1u, sizeof *lat);
    for (unsigned i = skip; i < delivered; i++)
        lat[nl++] = t_done[i] > t_start[i] ? t_done[i] - t_start[i] : 0;
    qsort(lat, nl, sizeof *lat, cmp_u64);
    double p50 = nl ? lat[nl / 2] / 1e3 : 0, p99 = nl ? lat[(size_t)(nl * 0.99)] / 1e3 : 0;
    double proc = ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)) * 1e9 +
                  ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) * 1e3;
    uint64_t iou_ns = 0;
    for (int j = 0; j < n_iou; j++)
        iou_ns += iou[j].ns;
    double msgs_total = (double)rounds * n_socks * k_msgs, sends_total = (double)rounds * n_socks;
    double load1;
    la = fopen("/proc/loadavg", "r");
    if (!la || fscanf(la, "%lf", &load1) != 1)
        load1 = -1;
    if (la)
        fclose(la);

    printf("mode %s  sockets %d  msgs/socket/round %d  rate %s  %.1f s  load %.2f->%.2f\n",
           label, n_socks, k_msgs, period ? "paced" : "flat out", elapsed / 1e9, load0, load1);
    printf("| mode | k | rounds/s | msgs/s | sender ns/msg | sender ns/send | receiver ns/msg |"
           " iou-* ns/msg | process ns/msg | enters/round | p50 us | p99 us | short+failed |\n");
    printf("| %s | %d | %.1f | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f | %.0f | %.0f | %llu+%llu |\n",
           label, k_msgs, rounds / (elapsed / 1e9), msgs_total / (elapsed / 1e9),
           (cpu1 - cpu0) / msgs_total, (cpu1 - cpu0) / sends_total, (rx1 - rx0) / msgs_total,
           iou_ns / msgs_total, proc / msgs_total, use_uring ? (double)uring_enters / rounds : 0.0,
           p50, p99, (unsigned long long)short_sends, (unsigned long long)failed_sends);
    for (int j = 0; j < n_iou; j++)
        printf("  io_uring thread %s (tid %d): %.1f ms CPU\n", iou[j].comm, (int)iou[j].tid, iou[j].ns / 1e6);
    if (delivered < rounds)
        printf("  WARNING: %u of %u rounds delivered within 2 s of the end\n", delivered, rounds);
    if (use_uring)
        io_uring_queue_exit(&ring);
    return 0;
}
