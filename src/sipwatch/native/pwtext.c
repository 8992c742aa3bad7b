/* The str operations of detect/passwords.py on UTF-8 text (see pwtext.h). */
#include "pwtext.h"

#include "hashes.h"

#include <string.h>

/* Length of the sequence a lead byte starts (the text is well-formed: it comes from a str);
 * 1 for a stray byte, so that no loop can stall. */
static inline int seq_len(unsigned char b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

/* The code point at p (n bytes left), its length in *len. */
static Py_UCS4 decode_at(const unsigned char *p, Py_ssize_t n, int *len)
{
    int k = seq_len(p[0]);
    if (k > n)
        k = 1;
    *len = k;
    switch (k) {
    case 2:
        return (Py_UCS4)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    case 3:
        return (Py_UCS4)(p[0] & 0x0F) << 12 | (Py_UCS4)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    case 4:
        return (Py_UCS4)(p[0] & 0x07) << 18 | (Py_UCS4)(p[1] & 0x3F) << 12 |
               (Py_UCS4)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    default:
        return p[0];
    }
}

/* A surrogate's three-byte form starts ED A0..ED BF. */
static inline int surrogate_at(const unsigned char *p, Py_ssize_t left)
{
    return left >= 3 && p[0] == 0xED && p[1] >= 0xA0;
}

int sw_text_plain(sw_str t)
{
    const unsigned char *p = (const unsigned char *)t.p;
    const unsigned char *ed = t.n ? memchr(p, 0xED, (size_t)t.n) : NULL;
    while (ed != NULL) {
        Py_ssize_t at = ed - p;
        if (surrogate_at(ed, t.n - at))
            return 0;
        ed = memchr(ed + 1, 0xED, (size_t)(t.n - at - 1));
    }
    return 1;
}

Py_ssize_t sw_text_encode(sw_str t, char *out)
{
    const unsigned char *p = (const unsigned char *)t.p;
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < t.n;) {
        if (surrogate_at(p + i, t.n - i)) {
            int len;
            Py_UCS4 c = decode_at(p + i, t.n - i, &len);
            if (c < 0xDC80 || c > 0xDCFF)
                return -1; /* UnicodeEncodeError */
            out[o++] = (char)(c - 0xDC00);
            i += 3;
        }
        else {
            out[o++] = (char)p[i++];
        }
    }
    return o;
}

int sw_text_encodable(sw_str t)
{
    const unsigned char *p = (const unsigned char *)t.p;
    for (Py_ssize_t i = 0; i < t.n; i++) {
        if (surrogate_at(p + i, t.n - i)) {
            int len;
            Py_UCS4 c = decode_at(p + i, t.n - i, &len);
            if (c < 0xDC80 || c > 0xDCFF)
                return 0;
            i += 2;
        }
    }
    return 1;
}

Py_ssize_t sw_text_len(sw_str t)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t.n; i++)
        n += ((unsigned char)t.p[i] & 0xC0) != 0x80;
    return n;
}

void sw_text_reverse(sw_str t, char *out)
{
    const unsigned char *p = (const unsigned char *)t.p;
    Py_ssize_t o = t.n;
    for (Py_ssize_t i = 0; i < t.n;) {
        int k = seq_len(p[i]);
        if (k > t.n - i)
            k = 1;
        o -= k;
        memcpy(out + o, p + i, (size_t)k);
        i += k;
    }
}

sw_str sw_text_strip(sw_str t)
{
    const unsigned char *p = (const unsigned char *)t.p;
    Py_ssize_t a = 0, b = t.n;
    while (a < b) {
        int len;
        Py_UCS4 c = decode_at(p + a, b - a, &len);
        if (!Py_UNICODE_ISSPACE(c))
            break;
        a += len;
    }
    while (b > a) {
        Py_ssize_t s = b - 1; /* back to the lead byte of the last code point */
        while (s > a && (p[s] & 0xC0) == 0x80 && b - s < 4)
            s--;
        int len;
        Py_UCS4 c = decode_at(p + s, b - s, &len);
        if (s + len != b) { /* not one sequence: a stray byte */
            s = b - 1;
            c = p[s];
        }
        if (!Py_UNICODE_ISSPACE(c))
            break;
        b = s;
    }
    return (sw_str){t.p + a, b - a};
}

/* The non-ASCII characters whose str.upper() is all ASCII (every one of them: a test checks
 * the table against Python over all code points); any other non-ASCII character keeps the
 * upper-cased text out of the ASCII names. */
static const struct {
    Py_UCS4 c;
    const char *upper;
} upper_ascii[] = {
    {0xDF, "SS"},   {0x131, "I"},   {0x17F, "S"},    {0xFB00, "FF"}, {0xFB01, "FI"},
    {0xFB02, "FL"}, {0xFB03, "FFI"}, {0xFB04, "FFL"}, {0xFB05, "ST"}, {0xFB06, "ST"},
};

int sw_text_algorithm(sw_str t, int *kind, int *sess)
{
    static const struct {
        const char *name;
        int kind;
    } names[] = {
        {"MD5", SW_HASH_MD5}, {"SHA-256", SW_HASH_SHA256}, {"SHA-512-256", SW_HASH_SHA512_256},
    };
    char up[24];
    size_t n = 0;
    if (t.n == 0) {
        memcpy(up, "MD5", 3);
        n = 3;
    }
    const unsigned char *p = (const unsigned char *)t.p;
    for (Py_ssize_t i = 0; i < t.n;) {
        int len;
        Py_UCS4 c = decode_at(p + i, t.n - i, &len);
        i += len;
        const char *u = NULL;
        char one = (char)(c >= 'a' && c <= 'z' ? c - 32 : c); /* NUL included */
        size_t k = 1;
        if (c < 0x80) {
            u = &one;
        }
        else {
            for (size_t j = 0; j < sizeof(upper_ascii) / sizeof(upper_ascii[0]); j++) {
                if (upper_ascii[j].c == c)
                    u = upper_ascii[j].upper;
            }
            if (u == NULL)
                return 0;
            k = strlen(u);
        }
        if (n + k > sizeof(up))
            return 0; /* longer than any name */
        memcpy(up + n, u, k);
        n += k;
    }
    *sess = n > 5 && memcmp(up + n - 5, "-SESS", 5) == 0;
    if (*sess)
        n -= 5;
    for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
        if (strlen(names[j].name) == n && memcmp(up, names[j].name, n) == 0) {
            *kind = names[j].kind;
            return 1;
        }
    }
    return 0;
}

int sw_text_is_auth_int(sw_str t)
{
    /* only U+212A KELVIN SIGN lowers to ASCII ("k") among non-ASCII characters, and "auth-int"
     * has no k: the text must be those 8 ASCII letters in any case */
    static const char want[] = "auth-int";
    if (t.n != 8)
        return 0;
    for (int i = 0; i < 8; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (unsigned char)want[i])
            return 0;
    }
    return 1;
}
