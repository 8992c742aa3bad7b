/* sw_framer: StreamFramer in C (see framer.h). Each function names the Python it mirrors. */
#include "framer.h"

#include "fastudp.h" /* sw_looks_like_sip */

#include <stdlib.h>
#include <string.h>

/* --- the regular expressions of sip/framing.py, as scanners ------------------------------ */

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* [!%*+.0-9A-Z_`a-z~'-] */
static inline int is_token(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    switch (c) {
    case '!': case '%': case '*': case '+': case '.': case '_': case '`': case '~':
    case '\'': case '-':
        return 1;
    default:
        return 0;
    }
}

/* The first occurrence of pat in d[from:to], or -1 (bytes.find). */
static Py_ssize_t find(const unsigned char *d, Py_ssize_t from, Py_ssize_t to, const char *pat,
                       Py_ssize_t m)
{
    if (from < 0)
        from = 0;
    if (to - from < m)
        return -1;
    const unsigned char *hit = memmem(d + from, (size_t)(to - from), pat, (size_t)m);
    return hit == NULL ? -1 : hit - d;
}

/* _EOH.search(d, pos).end() for \r?\n\r?\n, -1 when there is none (framing._head_end: the
 * first "\n\r\n" or "\n\n" at or after pos says where the first match ends). */
static Py_ssize_t eoh_end(const unsigned char *d, Py_ssize_t n, Py_ssize_t pos)
{
    if (pos > n)
        return -1;
    Py_ssize_t i = find(d, pos, n, "\n\r\n", 3);
    Py_ssize_t j = find(d, pos, i >= 0 ? i + 1 : n, "\n\n", 2);
    if (j >= 0)
        return j + 2;
    return i >= 0 ? i + 3 : -1;
}

/* [Ss][Ii][Pp]/[0-9]+\.[0-9]+ at d[i]: the index after it, or -1 */
static Py_ssize_t sip_version(const unsigned char *d, Py_ssize_t n, Py_ssize_t i)
{
    if (i + 4 > n || lower(d[i]) != 's' || lower(d[i + 1]) != 'i' || lower(d[i + 2]) != 'p' ||
        d[i + 3] != '/')
        return -1;
    i += 4;
    Py_ssize_t a = i;
    while (i < n && is_digit(d[i]))
        i++;
    if (i == a || i >= n || d[i] != '.')
        return -1;
    a = ++i;
    while (i < n && is_digit(d[i]))
        i++;
    return i == a ? -1 : i;
}

/* framing._START (without the ^) matches at d[k]:
 *   TOKEN+ " " [^ \r\n]+ " " SIP/d+.d+ \r?\n  |  SIP/d+.d+ " " [0-9]{3} [ \r\n] */
static int start_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t k)
{
    Py_ssize_t i = k;
    while (i < n && is_token(d[i]))
        i++;
    if (i > k && i < n && d[i] == ' ') {
        Py_ssize_t u = ++i;
        while (i < n && d[i] != ' ' && d[i] != '\r' && d[i] != '\n')
            i++;
        if (i > u && i < n && d[i] == ' ') {
            i = sip_version(d, n, i + 1);
            if (i >= 0) {
                if (i < n && d[i] == '\r')
                    i++;
                if (i < n && d[i] == '\n')
                    return 1;
            }
        }
    }
    i = sip_version(d, n, k);
    if (i < 0 || i >= n || d[i] != ' ')
        return 0;
    i++;
    if (i + 4 > n || !is_digit(d[i]) || !is_digit(d[i + 1]) || !is_digit(d[i + 2]))
        return 0;
    unsigned char c = d[i + 3];
    return c == ' ' || c == '\r' || c == '\n';
}

/* _START.search(d, from) with (?m)^: the first line start at or after `from` where a start
 * line begins (position 0 counts only when from is 0), or -1 */
static Py_ssize_t start_search(const unsigned char *d, Py_ssize_t n, Py_ssize_t from)
{
    if (from == 0) {
        if (n > 0 && start_at(d, n, 0))
            return 0;
        from = 1;
    }
    Py_ssize_t q = from - 1; /* a line starts at p when d[p - 1] is a newline */
    while (q < n) {
        const unsigned char *lf = memchr(d + q, '\n', (size_t)(n - q));
        if (lf == NULL)
            return -1;
        Py_ssize_t p = lf - d + 1;
        if (p < n && start_at(d, n, p))
            return p;
        q = p;
    }
    return -1;
}

/* decode._HTTPISH.match(d, 0, 256):
 * [\r\n]*(?:[A-Z][A-Z_-]* [^ \r\n]+ (?:HTTP|RTSP)/|(?:HTTP|RTSP)/[0-9]) */
static int httpish(const unsigned char *d, Py_ssize_t n)
{
    if (n > 256)
        n = 256;
    Py_ssize_t i = 0;
    while (i < n && (d[i] == '\r' || d[i] == '\n'))
        i++;
    Py_ssize_t j = i;
    if (j < n && d[j] >= 'A' && d[j] <= 'Z') {
        j++;
        while (j < n && ((d[j] >= 'A' && d[j] <= 'Z') || d[j] == '_' || d[j] == '-'))
            j++;
        if (j < n && d[j] == ' ') {
            Py_ssize_t u = ++j;
            while (j < n && d[j] != ' ' && d[j] != '\r' && d[j] != '\n')
                j++;
            if (j > u && j < n && d[j] == ' ') {
                j++;
                if (j + 5 <= n &&
                    (memcmp(d + j, "HTTP/", 5) == 0 || memcmp(d + j, "RTSP/", 5) == 0))
                    return 1;
            }
        }
    }
    return i + 6 <= n && (memcmp(d + i, "HTTP/", 5) == 0 || memcmp(d + i, "RTSP/", 5) == 0) &&
           is_digit(d[i + 5]);
}

int sw_is_foreign(const unsigned char *d, Py_ssize_t n)
{
    unsigned char b0 = d[0];
    if (b0 >= 20 && b0 <= 23 && n > 2 && (d[1] == 3 || d[1] == 0xFE))
        return 1; /* TLS / DTLS record */
    if (n >= 20 && b0 < 4 && memcmp(d + 4, "\x21\x12\xa4\x42", 4) == 0)
        return 1; /* STUN */
    return httpish(d, n);
}

/* --- the buffer ----------------------------------------------------------------------------- */

#define BUF(f) ((f)->data + (f)->start)

#define KEEP_CAP 16384 /* an emptied buffer larger than this is given back (many flows) */

static void consume(sw_framer *f, Py_ssize_t n)
{
    f->start += n;
    f->len -= n;
    if (f->len == 0) {
        f->start = 0;
        if (f->cap > KEEP_CAP) {
            free(f->data);
            f->data = NULL;
            f->cap = 0;
        }
    }
}

static int append(sw_framer *f, const unsigned char *d, Py_ssize_t n)
{
    if (n <= 0)
        return 0;
    if (f->start + f->len + n > f->cap) {
        if (f->start) {
            memmove(f->data, f->data + f->start, (size_t)f->len);
            f->start = 0;
        }
        if (f->len + n > f->cap) {
            Py_ssize_t cap = f->cap ? f->cap : 2048;
            while (cap < f->len + n) {
                if (cap > PY_SSIZE_T_MAX / 2)
                    return -1;
                cap *= 2;
            }
            unsigned char *p = realloc(f->data, (size_t)cap);
            if (p == NULL)
                return -1;
            f->data = p;
            f->cap = cap;
        }
    }
    memcpy(f->data + f->start + f->len, d, (size_t)n);
    f->len += n;
    return 0;
}

/* StreamFramer._reset_scan */
static void reset_scan(sw_framer *f)
{
    f->line_ok = 0;
    f->scanned = 0;
    f->head_end = -1;
    f->length = 0;
}

void sw_framer_init(sw_framer *f, Py_ssize_t max_head, Py_ssize_t max_body)
{
    memset(f, 0, sizeof(*f));
    f->max_head = max_head;
    f->max_body = max_body;
    reset_scan(f);
}

void sw_framer_reset(sw_framer *f)
{
    consume(f, f->len);
    f->skip = 0;
    f->dropped = 0;
    reset_scan(f);
}

void sw_framer_free(sw_framer *f)
{
    free(f->data);
    f->data = NULL;
    f->start = f->len = f->cap = 0;
}

/* StreamFramer._resync: drop bytes up to the next line that starts a SIP message (the search
 * starts after the first byte), or keep the last partial line. */
static void resync(sw_framer *f)
{
    const unsigned char *b = BUF(f);
    Py_ssize_t n = f->len;
    Py_ssize_t cut = start_search(b, n, 1);
    if (cut < 0) {
        const unsigned char *nl = n > 0 ? memrchr(b, '\n', (size_t)n) : NULL;
        cut = nl != NULL ? nl - b + 1 : n;
        if (n - cut > f->max_head)
            cut = n;
    }
    f->dropped += cut;
    consume(f, cut);
    reset_scan(f);
}

/* StreamFramer._frame_one: 1 when the loop goes on */
static int frame_one(sw_framer *f, sw_framer_emit emit, void *ctx)
{
    if (!f->line_ok) {
        Py_ssize_t i = 0;
        const unsigned char *b = BUF(f);
        while (i < f->len && (b[i] == '\r' || b[i] == '\n'))
            i++;
        if (i)
            consume(f, i);
        if (f->len == 0)
            return 0;
        b = BUF(f);
        Py_ssize_t nl = -1;
        if (f->scanned < f->len) {
            const unsigned char *lf =
                memchr(b + f->scanned, '\n', (size_t)(f->len - f->scanned));
            if (lf != NULL)
                nl = lf - b;
        }
        if (nl < 0) {
            f->scanned = f->len;
            if (f->len > f->max_head) { /* a start line that never ends */
                f->dropped += f->len;
                consume(f, f->len);
                reset_scan(f);
            }
            return 0;
        }
        f->scanned = 0;
        if (!sw_looks_like_sip(b, nl + 1)) {
            resync(f);
            return f->len > 0;
        }
        f->line_ok = 1;
    }
    if (f->head_end < 0) {
        Py_ssize_t e = eoh_end(BUF(f), f->len, f->scanned);
        if (e < 0) {
            f->scanned = f->len > 3 ? f->len - 3 : 0;
            if (f->len > f->max_head) {
                resync(f);
                return f->len > 0;
            }
            return 0;
        }
        f->head_end = e;
        unsigned long long v;
        f->length = sw_head_content_length(BUF(f), e, &v) ? v : 0;
    }
    Py_ssize_t head_end = f->head_end;
    unsigned long long length = f->length;
    Py_ssize_t keep = length < (unsigned long long)f->max_body ? (Py_ssize_t)length : f->max_body;
    if (f->len < head_end + keep)
        return 0;
    emit(ctx, BUF(f), head_end + keep);
    unsigned long long rest = length - (unsigned long long)keep;
    if (rest) {
        Py_ssize_t have = f->len - head_end - keep;
        Py_ssize_t cut = (unsigned long long)have < rest ? have : (Py_ssize_t)rest;
        f->dropped += cut;
        f->skip = rest - (unsigned long long)cut;
        consume(f, head_end + keep + cut);
    } else {
        consume(f, head_end + keep);
    }
    reset_scan(f);
    return 1;
}

int sw_framer_feed(sw_framer *f, const unsigned char *d, Py_ssize_t n, sw_framer_emit emit,
                   void *ctx)
{
    if (f->skip) {
        Py_ssize_t cut = (unsigned long long)n < f->skip ? n : (Py_ssize_t)f->skip;
        f->skip -= (unsigned long long)cut;
        f->dropped += cut;
        d += cut;
        n -= cut;
    }
    if (append(f, d, n) < 0)
        return -1;
    while (frame_one(f, emit, ctx))
        ;
    return 0;
}

void sw_framer_close(sw_framer *f, sw_framer_emit emit, void *ctx)
{
    Py_ssize_t i = 0;
    const unsigned char *b = BUF(f);
    while (i < f->len && (b[i] == '\r' || b[i] == '\n'))
        i++;
    consume(f, i);
    b = BUF(f);
    if (f->len) {
        if (sw_looks_like_sip(b, f->len) || start_search(b, f->len, 0) >= 0)
            emit(ctx, b, f->len);
        else
            f->dropped += f->len;
    }
    consume(f, f->len);
    reset_scan(f);
}
