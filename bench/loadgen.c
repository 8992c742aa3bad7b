/*
 * REGISTER load generator for bench/bench_honeypot.py (Linux, UDP, loopback only).
 *
 * Sends REGISTER requests at a fixed rate for a fixed time, each from one of N distinct
 * source addresses 127.A.B.C (chosen per datagram with IP_PKTINFO, so one socket bound to
 * the wildcard address emulates N attackers and receives all their replies), and counts the
 * replies matched by Call-ID and Via branch. Prints one JSON object on stdout.
 *
 *   cc -O2 -o loadgen loadgen.c
 *   loadgen --target 127.0.0.1:5090 --rate 10000 --duration 5 --sources 1000
 *
 * Every request has its own Call-ID (lg<run>-<seq>@sipwatch.bench), Via branch, From tag and
 * CSeq; the To user is --user (an extension that exists, so the target answers 401).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MSG_MAX 1024
#define RX_MAX 4096
#define MAX_TOTAL 50000000ULL /* requests per run: bounds the bitmap and latency arrays */
#define MAX_SOCKS 64

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --target 127.0.0.1:PORT --rate N --duration S [--sources N]\n"
            "               [--first-source K] [--sockets P] [--wait S] [--user EXT]\n"
            "               [--run-id N] [--rcvbuf BYTES]\n");
    exit(2);
}

/* Source number k -> 127.A.B.C with C in 1..254 and A >= 1 (never the target's 127.0.0.x). */
static struct in_addr source_addr(uint64_t k) {
    uint32_t c = 1 + (uint32_t)(k % 254);
    uint32_t b = (uint32_t)((k / 254) % 256);
    uint32_t a = 1 + (uint32_t)((k / (254 * 256)) % 254);
    struct in_addr in;
    in.s_addr = htonl((127u << 24) | (a << 16) | (b << 8) | c);
    return in;
}

static uint64_t mix(uint64_t x) { /* splitmix64: a From tag that looks random */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Case-insensitive search for a header line start ("\nname:"); returns the value start. */
static const char *header(const char *buf, size_t len, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + n + 1 < len; i++) {
        if (buf[i] == '\n' && strncasecmp(buf + i + 1, name, n) == 0) {
            const char *p = buf + i + 1 + n;
            const char *end = buf + len;
            while (p < end && (*p == ' ' || *p == '\t')) p++;
            if (p < end && *p == ':') {
                p++;
                while (p < end && (*p == ' ' || *p == '\t')) p++;
                return p;
            }
        }
    }
    return NULL;
}

/* Parse "lg<run>-<seq>" at p; returns 1 and sets run/seq on success. */
static int parse_id(const char *p, const char *end, uint64_t *run, uint64_t *seq) {
    if (end - p < 4 || p[0] != 'l' || p[1] != 'g') return 0;
    p += 2;
    char *q;
    *run = strtoull(p, &q, 10);
    if (q == p || q >= end || *q != '-') return 0;
    p = q + 1;
    *seq = strtoull(p, &q, 10);
    return q != p;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *target = NULL, *user = "100";
    double rate = 0, duration = 0, wait_s = 1.0;
    uint64_t sources = 1000, first = 0, run_id = 1;
    int nsock = 1, rcvbuf = 32 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--target")) target = v;
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--sources")) sources = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--first-source")) first = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--sockets")) nsock = atoi(v);
        else if (!strcmp(a, "--wait")) wait_s = atof(v);
        else if (!strcmp(a, "--user")) user = v;
        else if (!strcmp(a, "--run-id")) run_id = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--rcvbuf")) rcvbuf = atoi(v);
        else usage();
    }
    if (!target || rate <= 0 || duration <= 0 || sources == 0 || nsock < 1 || nsock > MAX_SOCKS ||
        wait_s < 0 || wait_s > 60 || strlen(user) > 64)
        usage();

    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host) usage();
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) usage();
    if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: the target must be in 127.0.0.0/8\n");
        return 2;
    }

    uint64_t total = (uint64_t)(rate * duration + 0.5);
    if (total == 0 || total > MAX_TOTAL) {
        fprintf(stderr, "loadgen: rate x duration must be 1..%llu\n", MAX_TOTAL);
        return 2;
    }
    uint8_t *answered = calloc(total / 8 + 1, 1);
    uint32_t *sent_us = malloc(total * sizeof *sent_us); /* send time, us since start */
    uint32_t *lat_us = malloc(total * sizeof *lat_us);
    if (!answered || !sent_us || !lat_us) die("malloc");

    int socks[MAX_SOCKS];
    uint16_t sports[MAX_SOCKS];
    struct pollfd pfd[MAX_SOCKS];
    for (int s = 0; s < nsock; s++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        /* a large receive buffer, so the generator never drops replies itself */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0 &&
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
            die("SO_RCVBUF");
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof rcvbuf);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one); /* count our own drops */
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (bind(fd, (struct sockaddr *)&any, sizeof any) < 0) die("bind");
        socklen_t sl = sizeof any;
        getsockname(fd, (struct sockaddr *)&any, &sl);
        socks[s] = fd;
        sports[s] = ntohs(any.sin_port);
        pfd[s].fd = fd;
        pfd[s].events = POLLIN;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* send side */
    static char txbuf[BATCH][MSG_MAX];
    static char txctl[BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    static struct iovec txiov[BATCH];
    static struct mmsghdr txmsg[BATCH];
    /* receive side */
    static char rxbuf[BATCH][RX_MAX];
    static char rxctl[BATCH][CMSG_SPACE(sizeof(uint32_t))];
    static struct iovec rxiov[BATCH];
    static struct mmsghdr rxmsg[BATCH];

    uint64_t sent = 0, send_errors = 0, got = 0, dups = 0, other_status = 0, status401 = 0;
    uint64_t foreign = 0, bad_branch = 0;
    uint32_t rx_dropped[MAX_SOCKS] = {0};
    uint64_t t0 = now_ns(), t_last_send = t0;
    uint64_t send_end = t0 + (uint64_t)(duration * 1e9);
    double ns_per_req = 1e9 / rate;
    int sending = 1;
    uint64_t deadline = 0;

    while (!stop_flag) {
        uint64_t t = now_ns();
        if (sending) {
            uint64_t due = (uint64_t)((double)(t - t0) / ns_per_req) + 1;
            if (due > total) due = total;
            while (sent < due && !stop_flag) {
                int n = (int)((due - sent) < BATCH ? (due - sent) : BATCH);
                /* all datagrams of one sendmmsg go through one socket */
                int s = (int)(sent % (uint64_t)nsock);
                uint32_t us = (uint32_t)((now_ns() - t0) / 1000);
                for (int j = 0; j < n; j++) {
                    uint64_t seq = sent + (uint64_t)j;
                    struct in_addr src = source_addr(first + seq % sources);
                    char sip[INET_ADDRSTRLEN];
                    inet_ntop(AF_INET, &src, sip, sizeof sip);
                    int len = snprintf(
                        txbuf[j], MSG_MAX,
                        "REGISTER sip:%s SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-lg%llu-%llu;rport\r\n"
                        "Max-Forwards: 70\r\n"
                        "From: \"%s\" <sip:%s@%s>;tag=%016llx\r\n"
                        "To: \"%s\" <sip:%s@%s>\r\n"
                        "Call-ID: lg%llu-%llu@sipwatch.bench\r\n"
                        "CSeq: %llu REGISTER\r\n"
                        "Contact: <sip:%s@%s:%u>\r\n"
                        "User-Agent: sipwatch-loadgen/1\r\n"
                        "Expires: 3600\r\n"
                        "Content-Length: 0\r\n\r\n",
                        host, sip, sports[s], (unsigned long long)run_id, (unsigned long long)seq,
                        user, user, host, (unsigned long long)mix(seq ^ (run_id << 40)), user,
                        user, host, (unsigned long long)run_id, (unsigned long long)seq,
                        (unsigned long long)(seq % 1000000 + 1), user, sip, sports[s]);
                    txiov[j].iov_base = txbuf[j];
                    txiov[j].iov_len = (size_t)len;
                    memset(&txmsg[j], 0, sizeof txmsg[j]);
                    txmsg[j].msg_hdr.msg_name = &dst;
                    txmsg[j].msg_hdr.msg_namelen = sizeof dst;
                    txmsg[j].msg_hdr.msg_iov = &txiov[j];
                    txmsg[j].msg_hdr.msg_iovlen = 1;
                    txmsg[j].msg_hdr.msg_control = txctl[j];
                    txmsg[j].msg_hdr.msg_controllen = sizeof txctl[j];
                    struct cmsghdr *c = CMSG_FIRSTHDR(&txmsg[j].msg_hdr);
                    c->cmsg_level = IPPROTO_IP;
                    c->cmsg_type = IP_PKTINFO;
                    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
                    struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
                    memset(pi, 0, sizeof *pi);
                    pi->ipi_spec_dst = src; /* the source address of this "attacker" */
                    sent_us[seq] = us;
                }
                int done = 0;
                while (done < n) {
                    int r = sendmmsg(socks[s], txmsg + done, (unsigned)(n - done), 0);
                    if (r < 0) {
                        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
                            struct pollfd o = {.fd = socks[s], .events = POLLOUT};
                            poll(&o, 1, 1);
                            continue;
                        }
                        send_errors += (uint64_t)(n - done); /* counted as sent, never answered */
                        break;
                    }
                    done += r;
                }
                sent += (uint64_t)n;
            }
            if (sent >= total || t >= send_end + 1000000000ULL) {
                sending = 0;
                t_last_send = now_ns();
                deadline = t_last_send + (uint64_t)(wait_s * 1e9);
            }
        }

        /* drain replies from every socket */
        int any = 0;
        for (int s = 0; s < nsock; s++) {
            for (int round = 0; round < 16; round++) {
                for (int j = 0; j < BATCH; j++) {
                    rxiov[j].iov_base = rxbuf[j];
                    rxiov[j].iov_len = RX_MAX - 1;
                    memset(&rxmsg[j], 0, sizeof rxmsg[j]);
                    rxmsg[j].msg_hdr.msg_iov = &rxiov[j];
                    rxmsg[j].msg_hdr.msg_iovlen = 1;
                    rxmsg[j].msg_hdr.msg_control = rxctl[j];
                    rxmsg[j].msg_hdr.msg_controllen = sizeof rxctl[j];
                }
                int r = recvmmsg(socks[s], rxmsg, BATCH, MSG_DONTWAIT, NULL);
                if (r <= 0) break;
                any = 1;
                uint32_t now_us = (uint32_t)((now_ns() - t0) / 1000);
                for (int j = 0; j < r; j++) {
                    struct msghdr *h = &rxmsg[j].msg_hdr;
                    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                            memcpy(&rx_dropped[s], CMSG_DATA(c), sizeof(uint32_t));
                    size_t len = rxmsg[j].msg_len;
                    char *b = rxbuf[j];
                    b[len] = 0;
                    const char *end = b + len;
                    uint64_t run, seq, brun, bseq;
                    const char *cid = header(b, len, "call-id");
                    if (!cid) cid = header(b, len, "i");
                    if (!cid || !parse_id(cid, end, &run, &seq) || run != run_id || seq >= sent) {
                        foreign++;
                        continue;
                    }
                    const char *br = strstr(b, "branch=z9hG4bK-");
                    if (!br || !parse_id(br + 15, end, &brun, &bseq) || brun != run || bseq != seq) {
                        bad_branch++;
                        continue;
                    }
                    if (answered[seq >> 3] & (1u << (seq & 7))) {
                        dups++;
                        continue;
                    }
                    answered[seq >> 3] |= (uint8_t)(1u << (seq & 7));
                    lat_us[got++] = now_us - sent_us[seq];
                    if (len > 12 && !strncmp(b, "SIP/2.0 401", 11)) status401++;
                    else other_status++;
                }
                if (r < BATCH) break;
            }
        }

        if (!sending && (got >= sent || now_ns() >= deadline)) break;
        if (!any) {
            /* idle: wait for a reply or until the next request is due (at most 200 us) */
            uint64_t wait_ns = 200000;
            if (sending) {
                uint64_t next = t0 + (uint64_t)((double)sent * ns_per_req);
                uint64_t t2 = now_ns();
                wait_ns = next > t2 ? next - t2 : 0;
                if (wait_ns > 200000) wait_ns = 200000;
            }
            if (wait_ns) {
                struct timespec ts = {0, (long)wait_ns};
                ppoll(pfd, (nfds_t)nsock, &ts, NULL);
            }
        }
    }

    double send_s = (double)(t_last_send - t0) / 1e9;
    uint64_t drops = 0;
    for (int s = 0; s < nsock; s++) drops += rx_dropped[s];
    qsort(lat_us, got, sizeof *lat_us, cmp_u32);
#define PCT(p) (got ? lat_us[(size_t)((double)(got - 1) * (p))] : 0)
    printf("{\"run_id\": %llu, \"rate\": %.1f, \"duration\": %.3f, \"sources\": %llu, "
           "\"first_source\": %llu, \"sockets\": %d, \"sent\": %llu, \"send_seconds\": %.4f, "
           "\"send_rate\": %.1f, \"send_errors\": %llu, \"answered\": %llu, "
           "\"status_401\": %llu, \"status_other\": %llu, \"duplicates\": %llu, "
           "\"foreign\": %llu, \"bad_branch\": %llu, \"unanswered\": %llu, "
           "\"unanswered_pct\": %.4f, \"generator_rx_dropped\": %llu, "
           "\"latency_us\": {\"p50\": %u, \"p99\": %u, \"max\": %u}, \"interrupted\": %s}\n",
           (unsigned long long)run_id, rate, duration, (unsigned long long)sources,
           (unsigned long long)first, nsock, (unsigned long long)sent, send_s,
           send_s > 0 ? (double)sent / send_s : 0.0, (unsigned long long)send_errors,
           (unsigned long long)got, (unsigned long long)status401,
           (unsigned long long)other_status, (unsigned long long)dups,
           (unsigned long long)foreign, (unsigned long long)bad_branch,
           (unsigned long long)(sent - got), sent ? 100.0 * (double)(sent - got) / (double)sent : 0.0,
           (unsigned long long)drops, PCT(0.5), PCT(0.99), got ? lat_us[got - 1] : 0,
           stop_flag ? "true" : "false");
    for (int s = 0; s < nsock; s++) close(socks[s]);
    free(answered);
    free(sent_us);
    free(lat_us);
    return stop_flag ? 130 : 0;
}
