/* Independent checkers for tests/test_report.c, written from the specs and
 * not from the report code:
 *   xml_check     a strict XML well-formedness check of one element (an
 *                 inline <svg> block): balanced, properly nested tags,
 *                 quoted and unique attributes, only the five predefined
 *                 entities or character references, no raw < & > in text;
 *   json_parse    an RFC 8259 parser into a small tree (numbers keep their
 *                 text, so a test can compare them with the page's);
 *   utf8_valid    the whole file is valid UTF-8 without control characters. */
#ifndef NNQ_TESTS_REPORT_CHECK_H
#define NNQ_TESTS_REPORT_CHECK_H

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- XML ---- */

#define XML_MAX_DEPTH 64

typedef struct xml_attr_hook {
    /* Called for every attribute (name, raw value), e.g. to check that
     * coordinates are numbers; returns false to fail. */
    bool (*fn)(const char *elem, const char *name, const char *value, size_t len);
} xml_attr_hook;

static bool xml_name_start(int c) { return isalpha(c) || c == '_' || c == ':'; }
static bool xml_name_char(int c) { return isalnum(c) || c == '_' || c == ':' || c == '-' || c == '.'; }

/* An entity or character reference at s ("&...;"); its length or 0. */
static size_t xml_ref(const char *s, const char *end) {
    static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(named[i]);
        if ((size_t)(end - s) >= n && memcmp(s, named[i], n) == 0) return n;
    }
    const char *p = s + 1;
    if (p >= end || *p != '#') return 0;
    p++;
    bool hex = p < end && *p == 'x';
    if (hex) p++;
    const char *d = p;
    while (p < end && (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))) p++;
    if (p == d || p >= end || *p != ';') return 0;
    return (size_t)(p + 1 - s);
}

/* Checks [s, end) holds exactly one well-formed element (plus whitespace
 * around it). On failure writes a reason with the offset into err. */
static bool xml_check(const char *s, const char *end, const xml_attr_hook *hook, char *err,
                      size_t cap) {
    const char *stack[XML_MAX_DEPTH];
    size_t stack_len[XML_MAX_DEPTH];
    int depth = 0;
    bool seen_root = false;
    const char *p = s;
#define XML_FAIL(...)                                                                          \
    do {                                                                                       \
        int o_ = snprintf(err, cap, "offset %ld: ", (long)(p - s));                            \
        snprintf(err + o_, cap - (size_t)o_, __VA_ARGS__);                                     \
        return false;                                                                          \
    } while (0)
    while (p < end) {
        if (*p != '<') {
            if (depth == 0 && !isspace((unsigned char)*p)) XML_FAIL("text outside the root");
            if (*p == '&') {
                size_t n = xml_ref(p, end);
                if (!n) XML_FAIL("raw '&' in text");
                p += n;
                continue;
            }
            if (*p == '>') XML_FAIL("raw '>' in text");
            p++;
            continue;
        }
        if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            const char *q = strstr(p + 4, "-->");
            if (!q || q >= end) XML_FAIL("unterminated comment");
            p = q + 3;
            continue;
        }
        if (p + 1 < end && p[1] == '/') { /* closing tag */
            const char *n0 = p + 2, *n1 = n0;
            while (n1 < end && xml_name_char((unsigned char)*n1)) n1++;
            const char *q = n1;
            while (q < end && isspace((unsigned char)*q)) q++;
            if (q >= end || *q != '>') XML_FAIL("malformed closing tag");
            if (depth == 0) XML_FAIL("closing tag without an open element");
            depth--;
            if ((size_t)(n1 - n0) != stack_len[depth] || memcmp(n0, stack[depth], stack_len[depth]))
                XML_FAIL("</%.*s> closes <%.*s>", (int)(n1 - n0), n0, (int)stack_len[depth],
                         stack[depth]);
            p = q + 1;
            continue;
        }
        /* opening or empty-element tag */
        if (depth == 0 && seen_root) XML_FAIL("a second root element");
        const char *n0 = p + 1, *n1 = n0;
        if (n1 >= end || !xml_name_start((unsigned char)*n1)) XML_FAIL("bad tag name");
        while (n1 < end && xml_name_char((unsigned char)*n1)) n1++;
        char elem[64];
        snprintf(elem, sizeof elem, "%.*s", (int)(n1 - n0), n0);
        const char *q = n1;
        char names[64][48];
        int n_attr = 0;
        for (;;) {
            const char *ws = q;
            while (q < end && isspace((unsigned char)*q)) q++;
            if (q >= end) XML_FAIL("unterminated tag <%.40s", elem);
            if (*q == '>' || (*q == '/' && q + 1 < end && q[1] == '>')) break;
            if (q == ws) XML_FAIL("attributes of <%.40s> not separated by space", elem);
            const char *a0 = q;
            if (!xml_name_start((unsigned char)*q)) XML_FAIL("bad attribute name in <%.40s>", elem);
            while (q < end && xml_name_char((unsigned char)*q)) q++;
            size_t alen = (size_t)(q - a0);
            if (q >= end || *q != '=') XML_FAIL("attribute without '=' in <%.40s>", elem);
            q++;
            if (q >= end || (*q != '"' && *q != '\'')) XML_FAIL("unquoted attribute in <%.40s>", elem);
            char quote = *q++;
            const char *v0 = q;
            while (q < end && *q != quote) {
                if (*q == '<') XML_FAIL("raw '<' in an attribute of <%.40s>", elem);
                if (*q == '&') {
                    size_t n = xml_ref(q, end);
                    if (!n) XML_FAIL("raw '&' in an attribute of <%.40s>", elem);
                    q += n;
                } else {
                    q++;
                }
            }
            if (q >= end) XML_FAIL("unterminated attribute value in <%.40s>", elem);
            if (n_attr >= 64 || alen >= sizeof names[0]) XML_FAIL("too many/long attributes");
            snprintf(names[n_attr], sizeof names[0], "%.*s", (int)alen, a0);
            for (int i = 0; i < n_attr; i++)
                if (strcmp(names[i], names[n_attr]) == 0)
                    XML_FAIL("duplicate attribute %.40s in <%.40s>", names[i], elem);
            if (hook && !hook->fn(elem, names[n_attr], v0, (size_t)(q - v0)))
                XML_FAIL("attribute %.40s=\"%.*s\" of <%.40s> rejected", names[n_attr],
                         (int)(q - v0 < 60 ? q - v0 : 60), v0, elem);
            n_attr++;
            q++; /* closing quote */
        }
        seen_root = true;
        if (*q == '/') {
            p = q + 2;
            continue;
        }
        if (depth >= XML_MAX_DEPTH) XML_FAIL("nesting too deep");
        stack[depth] = n0;
        stack_len[depth] = (size_t)(n1 - n0);
        depth++;
        p = q + 1;
    }
    if (depth != 0) XML_FAIL("<%.*s> not closed", (int)stack_len[depth - 1], stack[depth - 1]);
    if (!seen_root) XML_FAIL("no element");
    return true;
#undef XML_FAIL
}

/* ---- JSON ---- */

typedef enum jkind { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jkind;

typedef struct jval {
    jkind k;
    bool b;
    char *s;            /* J_STR: the decoded string; J_NUM: the number's text */
    int n;              /* J_ARR, J_OBJ: element count */
    struct jval *items; /* [n] */
    char **keys;        /* J_OBJ: [n] */
} jval;

typedef struct jparser {
    const char *p, *end;
    const char *err;
    int depth;
} jparser;

static void jfree(jval *v) {
    if (!v) return;
    free(v->s);
    for (int i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

static void jws(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jerr(jparser *j, const char *msg) {
    if (!j->err) j->err = msg;
    return false;
}

static void put_utf8(char *out, size_t *o, uint32_t c) {
    if (c < 0x80) out[(*o)++] = (char)c;
    else if (c < 0x800) out[(*o)++] = (char)(0xc0 | c >> 6), out[(*o)++] = (char)(0x80 | (c & 0x3f));
    else if (c < 0x10000)
        out[(*o)++] = (char)(0xe0 | c >> 12), out[(*o)++] = (char)(0x80 | (c >> 6 & 0x3f)),
        out[(*o)++] = (char)(0x80 | (c & 0x3f));
    else
        out[(*o)++] = (char)(0xf0 | c >> 18), out[(*o)++] = (char)(0x80 | (c >> 12 & 0x3f)),
        out[(*o)++] = (char)(0x80 | (c >> 6 & 0x3f)), out[(*o)++] = (char)(0x80 | (c & 0x3f));
}

static bool jhex4(jparser *j, uint32_t *c) {
    if (j->end - j->p < 4) return jerr(j, "short \\u escape");
    *c = 0;
    for (int i = 0; i < 4; i++) {
        int h = j->p[i];
        if (!isxdigit(h)) return jerr(j, "bad \\u escape");
        *c = *c << 4 | (uint32_t)(isdigit(h) ? h - '0' : (tolower(h) - 'a' + 10));
    }
    j->p += 4;
    return true;
}

static bool jstring(jparser *j, char **out) {
    j->p++; /* opening quote */
    char *buf = malloc((size_t)(j->end - j->p) + 1);
    size_t o = 0;
    if (!buf) return jerr(j, "out of memory");
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) {
            free(buf);
            return jerr(j, "control character in a string");
        }
        if (c != '\\') {
            buf[o++] = (char)c;
            j->p++;
            continue;
        }
        j->p++;
        if (j->p >= j->end) break;
        char e = *j->p++;
        uint32_t cp;
        switch (e) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '/': buf[o++] = '/'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'u':
            if (!jhex4(j, &cp)) {
                free(buf);
                return false;
            }
            if (cp >= 0xd800 && cp < 0xdc00) { /* surrogate pair */
                uint32_t lo;
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
                    free(buf);
                    return jerr(j, "lone surrogate");
                }
                j->p += 2;
                if (!jhex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    free(buf);
                    return jerr(j, "bad surrogate pair");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(buf, &o, cp);
            break;
        default: free(buf); return jerr(j, "bad escape");
        }
    }
    if (j->p >= j->end) {
        free(buf);
        return jerr(j, "unterminated string");
    }
    j->p++;
    buf[o] = '\0';
    *out = buf;
    return true;
}

static bool jnumber(jparser *j, jval *v) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return jerr(j, "bad number");
    if (*j->p == '0') j->p++;
    else
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return jerr(j, "bad fraction");
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return jerr(j, "bad exponent");
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    }
    v->k = J_NUM;
    v->s = malloc((size_t)(j->p - s) + 1);
    if (!v->s) return jerr(j, "out of memory");
    memcpy(v->s, s, (size_t)(j->p - s));
    v->s[j->p - s] = '\0';
    return true;
}

static bool jvalue(jparser *j, jval *v);

static bool jpush(jparser *j, jval *v, jval *item, char *key) {
    jval *items = realloc(v->items, (size_t)(v->n + 1) * sizeof *items);
    if (!items) return jerr(j, "out of memory");
    v->items = items;
    if (v->k == J_OBJ) {
        char **keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *keys);
        if (!keys) return jerr(j, "out of memory");
        v->keys = keys;
        v->keys[v->n] = key;
    }
    v->items[v->n++] = *item;
    return true;
}

static bool jcontainer(jparser *j, jval *v, bool obj) {
    v->k = obj ? J_OBJ : J_ARR;
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        jws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"') return jerr(j, "expected a key");
            if (!jstring(j, &key)) return false;
            jws(j);
            if (j->p >= j->end || *j->p != ':') {
                free(key);
                return jerr(j, "expected ':'");
            }
            j->p++;
        }
        jval item = {0};
        if (!jvalue(j, &item) || !jpush(j, v, &item, key)) {
            jfree(&item);
            free(key);
            return false;
        }
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            return true;
        }
        return jerr(j, "expected ',' or a closing bracket");
    }
}

static bool jvalue(jparser *j, jval *v) {
    jws(j);
    if (j->p >= j->end) return jerr(j, "unexpected end");
    if (++j->depth > 64) return jerr(j, "nesting too deep");
    bool ok;
    char c = *j->p;
    if (c == '{' || c == '[') ok = jcontainer(j, v, c == '{');
    else if (c == '"') {
        v->k = J_STR;
        ok = jstring(j, &v->s);
    } else if (c == '-' || isdigit((unsigned char)c)) ok = jnumber(j, v);
    else if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        v->k = J_NULL;
        j->p += 4;
        ok = true;
    } else if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
        v->k = J_BOOL;
        v->b = true;
        j->p += 4;
        ok = true;
    } else if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
        v->k = J_BOOL;
        j->p += 5;
        ok = true;
    } else ok = jerr(j, "unexpected character");
    j->depth--;
    return ok;
}

/* Parse all of [s, s+n): one value and only whitespace after it. */
static bool json_parse(const char *s, size_t n, jval *out, const char **err) {
    jparser j = {s, s + n, NULL, 0};
    memset(out, 0, sizeof *out);
    bool ok = jvalue(&j, out);
    if (ok) {
        jws(&j);
        if (j.p != j.end) ok = jerr(&j, "data after the value");
    }
    if (!ok) jfree(out);
    *err = j.err;
    return ok;
}

static const jval *jget(const jval *o, const char *key) {
    if (!o || o->k != J_OBJ) return NULL;
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) return &o->items[i];
    return NULL;
}

static const jval *jat(const jval *a, int i) {
    if (!a || a->k != J_ARR || i < 0 || i >= a->n) return NULL;
    return &a->items[i];
}

static const char *jstr(const jval *v) { return v && v->k == J_STR ? v->s : NULL; }

/* ---- UTF-8 ---- */

static bool utf8_valid(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\n' && c != '\t') return false;
            if (c == 0x7f) return false;
            i++;
            continue;
        }
        int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + (size_t)len > n) return false;
        uint32_t cp = c & (0x7f >> len);
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += (size_t)len;
    }
    return true;
}

#endif
