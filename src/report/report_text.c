/* Text that is safe in the page and in JSON: UTF-8 clean-up on the way in,
 * escaping on the way out, and the one number format both writers share. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_impl.h"

/* Length of the valid UTF-8 sequence at p (1..4) and its code point, or 0
 * when the bytes are not valid UTF-8 (overlong, surrogate, > U+10FFFF). */
static int utf8_decode(const unsigned char *p, uint32_t *cp) {
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    int n;
    uint32_t c, min;
    if ((p[0] & 0xe0) == 0xc0) n = 2, c = p[0] & 0x1f, min = 0x80;
    else if ((p[0] & 0xf0) == 0xe0) n = 3, c = p[0] & 0x0f, min = 0x800;
    else if ((p[0] & 0xf8) == 0xf0) n = 4, c = p[0] & 0x07, min = 0x10000;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return n;
}

/* Code points XML 1.0 allows in text (so the SVG stays well formed). */
static bool xml_char_ok(uint32_t c) {
    if (c < 0x20) return c == '\n' || c == '\t';
    if (c == 0x7f) return false;
    return !(c == 0xfffe || c == 0xffff);
}

char *rep_sanitize(const char *s) {
    const size_t n = strlen(s);
    char *out = malloc(3 * n + 1); /* each bad byte becomes 3 bytes of U+FFFD */
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        uint32_t c;
        int len = utf8_decode(p, &c);
        if (len > 0 && xml_char_ok(c)) {
            memcpy(out + o, p, (size_t)len);
            o += (size_t)len;
            p += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            p += len > 0 ? len : 1;
        }
    }
    out[o] = '\0';
    return out;
}

void rep_put_html(FILE *fp, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default: fputc(*s, fp);
        }
    }
}

void rep_put_json(FILE *fp, const char *s) {
    if (!s) {
        fputs("null", fp);
        return;
    }
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
            else fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

/* Sanitized text only: every byte that is not a continuation byte starts a
 * code point. */
size_t rep_utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

bool rep_put_html_trunc(FILE *fp, const char *s, size_t max) {
    if (rep_utf8_len(s) <= max) {
        rep_put_html(fp, s);
        return false;
    }
    /* Keep max-1 code points and add an ellipsis. */
    const unsigned char *p = (const unsigned char *)s;
    size_t cps = 0, i = 0;
    while (p[i]) {
        if ((p[i] & 0xc0) != 0x80 && cps++ == max - 1) break;
        i++;
    }
    char *head = malloc(i + 1);
    if (head) {
        memcpy(head, s, i);
        head[i] = '\0';
        rep_put_html(fp, head);
        free(head);
    }
    fputs("\xe2\x80\xa6", fp);
    return true;
}

const char *nnq_report_fmt_number(double v, int fmt, char *buf, size_t cap) {
    if (rep_missing(v)) {
        snprintf(buf, cap, "\xe2\x80\x93"); /* en dash */
        return buf;
    }
    int n;
    if (fmt >= 0) {
        int d = fmt > 9 ? 9 : fmt;
        /* Huge values in fixed notation would be hundreds of digits. */
        n = fabs(v) < 1e15 ? snprintf(buf, cap, "%.*f", d, v) : snprintf(buf, cap, "%.15g", v);
    } else {
        /* Significant digits, but never "1.2e+02": plain notation from 1e-4
         * to 1e15 (whole integer part kept), trailing zeros dropped as %g does. */
        int sig = -fmt > 17 ? 17 : -fmt;
        double a = fabs(v);
        if (a != 0 && (a < 1e-4 || a >= 1e15)) {
            n = snprintf(buf, cap, "%.*g", sig, v);
        } else {
            int mag = a == 0 ? 0 : (int)floor(log10(a));
            int d = sig - 1 - mag;
            n = snprintf(buf, cap, "%.*f", d < 0 ? 0 : d > 20 ? 20 : d, v);
            if (n > 0 && (size_t)n < cap && strchr(buf, '.')) {
                char *end = buf + n;
                while (end[-1] == '0') *--end = '\0';
                if (end[-1] == '.') *--end = '\0';
            }
        }
    }
    if (n < 0 || (size_t)n >= cap) snprintf(buf, cap, "%.6g", v);
    /* "-0.00" → "0.00": a rounded-away sign only confuses. */
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
        memmove(buf, buf + 1, strlen(buf));
    return buf;
}
