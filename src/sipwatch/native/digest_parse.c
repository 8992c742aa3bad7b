/* sip.digest.parse_digest in C (see digest_parse.h). */
#include "digest_parse.h"

#include <string.h>

const char *const sw_digest_names[SW_D_COUNT] = {
    "username", "realm", "nonce", "uri", "response", "algorithm", "qop", "cnonce", "nc",
};

/* _PARAM's name characters: [!#$%&'*+.^_`|~0-9A-Za-z-] */
static inline int token_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+.^_`|~-", c) != NULL;
}

static inline int blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* s.strip(" \t") */
static sw_str strip_blank(const char *p, Py_ssize_t n)
{
    Py_ssize_t a = 0, b = n;
    while (a < b && blank((unsigned char)p[a]))
        a++;
    while (b > a && blank((unsigned char)p[b - 1]))
        b--;
    return (sw_str){p + a, b - a};
}

/* SW_D_* for name.lower(), or -1 for another name. Only U+212A (KELVIN SIGN) lowers to ASCII
 * among non-ASCII characters, and no name here has a 'k': a name with a byte >= 0x80 is
 * another name. */
static int name_index(const char *p, Py_ssize_t n)
{
    char low[16];
    if (n <= 0 || n > (Py_ssize_t)sizeof(low))
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80)
            return -1;
        low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    for (int k = 0; k < SW_D_COUNT; k++) {
        if ((Py_ssize_t)strlen(sw_digest_names[k]) == n && memcmp(low, sw_digest_names[k], n) == 0)
            return k;
    }
    return -1;
}

static inline const char *find(const char *p, Py_ssize_t n, char c)
{
    return n > 0 ? memchr(p, c, (size_t)n) : NULL;
}

/* _fast_params(rest): 1 with the first value of each name set, 0 where it gives None. */
static int fast_params(const char *s, Py_ssize_t n, sw_digest *d, unsigned char *have)
{
    Py_ssize_t a = 0;
    for (;;) {
        const char *comma = find(s + a, n - a, ',');
        Py_ssize_t b = comma ? comma - s : n;
        const char *part = s + a;
        Py_ssize_t pn = b - a;
        const char *eq = find(part, pn, '=');
        if (eq == NULL) {
            if (strip_blank(part, pn).n)
                return 0;
        }
        else {
            sw_str val = strip_blank(eq + 1, part + pn - (eq + 1));
            if (val.n && val.p[0] == '"') {
                if (val.n < 2 || val.p[val.n - 1] != '"' || find(val.p, val.n, '\\'))
                    return 0;
                val.p++;
                val.n -= 2;
            }
            else if (find(val.p, val.n, '"')) {
                return 0;
            }
            sw_str name = strip_blank(part, eq - part);
            int k = name_index(name.p, name.n);
            if (k >= 0 && !have[k]) {
                have[k] = 1;
                d->p[k] = val.n ? val : SW_STR_EMPTY;
            }
        }
        if (comma == NULL)
            return 1;
        a = b + 1;
    }
}

/* _unquote(value) into out when it rewrites the value; returns the result. */
static sw_str unquote(sw_str v, char **out)
{
    if (!(v.n && v.p[0] == '"'))
        return v;
    sw_str in = v.n > 1 && v.p[v.n - 1] == '"' ? (sw_str){v.p + 1, v.n - 2}
                                                : (sw_str){v.p + 1, v.n - 1};
    if (!find(in.p, in.n, '\\'))
        return in;
    /* re.sub(r"\\(.)", r"\1", value): '.' is any character but a newline */
    char *o = *out, *start = o;
    for (Py_ssize_t i = 0; i < in.n;) {
        if (in.p[i] == '\\' && i + 1 < in.n && in.p[i + 1] != '\n') {
            *o++ = in.p[i + 1];
            i += 2;
        }
        else {
            *o++ = in.p[i++];
        }
    }
    *out = o;
    return (sw_str){start, o - start};
}

/* _PARAM.findall(rest), each value through _unquote, the first of a name kept. */
static void regex_params(const char *s, Py_ssize_t n, sw_digest *d, unsigned char *have,
                         char *scratch)
{
    char *out = scratch;
    Py_ssize_t pos = 0;
    while (pos < n) {
        if (!token_char((unsigned char)s[pos])) {
            pos++;
            continue;
        }
        Py_ssize_t e = pos;
        while (e < n && token_char((unsigned char)s[e]))
            e++;
        Py_ssize_t j = e;
        while (j < n && blank((unsigned char)s[j]))
            j++;
        if (j >= n || s[j] != '=') {
            /* no match here, nor at any later start inside the same name run (a shorter
             * name is followed by a name character, never by blanks and '=') */
            pos = e;
            continue;
        }
        j++;
        while (j < n && blank((unsigned char)s[j]))
            j++;
        Py_ssize_t v0 = j;
        if (j < n && s[j] == '"') {
            /* "(?:[^"\\]|\\.)*"? */
            j++;
            while (j < n) {
                if (s[j] == '\\') {
                    if (j + 1 < n && s[j + 1] != '\n') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                if (s[j] == '"')
                    break;
                j++;
            }
            if (j < n && s[j] == '"')
                j++;
        }
        else {
            /* [^ \t,]* */
            while (j < n && !blank((unsigned char)s[j]) && s[j] != ',')
                j++;
        }
        int k = name_index(s + pos, e - pos);
        if (k >= 0 && !have[k]) {
            have[k] = 1;
            sw_str v = unquote((sw_str){s + v0, j - v0}, &out);
            d->p[k] = v.n ? v : SW_STR_EMPTY;
        }
        pos = j;
    }
}

int sw_parse_digest(sw_str value, sw_digest *d, char *scratch)
{
    for (int k = 0; k < SW_D_COUNT; k++)
        d->p[k] = SW_STR_EMPTY;
    sw_str v = strip_blank(value.p, value.n);
    if (v.n == 0)
        return 0;
    /* scheme, _, rest = value.partition(" "); no scheme word when it has a '=' */
    const char *sp = find(v.p, v.n, ' ');
    Py_ssize_t scheme_n = sp ? sp - v.p : v.n;
    sw_str rest = sp ? (sw_str){sp + 1, v.p + v.n - (sp + 1)} : SW_STR_EMPTY;
    if (find(v.p, scheme_n, '='))
        rest = v;
    unsigned char have[SW_D_COUNT] = {0};
    if (!fast_params(rest.p, rest.n, d, have)) { /* quoted commas or escapes */
        for (int k = 0; k < SW_D_COUNT; k++)
            d->p[k] = SW_STR_EMPTY;
        memset(have, 0, sizeof(have));
        regex_params(rest.p, rest.n, d, have, scratch);
    }
    return 1;
}
