/* Replays tests/corpus/<target>/ through the fuzz targets' own entry
 * points (fuzz/fuzz_entries.c), so every input a fuzzer once crashed nnq
 * with, and the malformed-input corpus of tests/corpus/make_corpus.py,
 * run in the normal suite (and under the sanitizers in `make test-asan`).
 * Each file must keep the properties the fuzzers check (a failure has a
 * one-line message; round trips and both readers agree), and its prefix
 * says what more is expected:
 *   ok-*     loads (onnx/qdq: and prepares)
 *   bad-*    is rejected
 *   crash-*  any verdict (a regression input: it must simply not crash) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/fileio.h"
#include "fuzz_entries.h"

#define CORPUS_DIR "tests/corpus"
#define MAX_FILES 1024
#define MAX_INPUT ((size_t)16 << 20)

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the regular entries of dir (no dot files). */
static int list_dir(const char *dir, char **names, int cap) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) break;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

static void replay_target(const fuzz_target *t) {
    char dir[256], path[512];
    char *names[MAX_FILES];
    int n_ok = 0, n_bad = 0, n_crash = 0;
    snprintf(dir, sizeof dir, "%s/%s", CORPUS_DIR, t->name);
    int n = list_dir(dir, names, MAX_FILES);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        const char *name = names[i];
        bool ok = strncmp(name, "ok-", 3) == 0, bad = strncmp(name, "bad-", 4) == 0;
        bool crash = strncmp(name, "crash-", 6) == 0;
        unsigned char *buf = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!ok && !bad && !crash) {
            fprintf(stderr, "%s: unknown prefix (expected ok-, bad- or crash-)\n", path);
            CHECK(!"corpus file with an unknown prefix");
            free(names[i]);
            continue;
        }
        CHECK_OK(nnq_read_file(path, MAX_INPUT, &buf, &len));
        nnq_status s = NNQ_OK;
        const char *bug = t->run(buf ? buf : (const unsigned char *)"", len, &s);
        if (bug) {
            fprintf(stderr, "%s: %s (%s: %s)\n", path, bug, nnq_status_name(s), nnq_last_error());
            CHECK(!"a fuzz property failed");
        } else if (ok && s != NNQ_OK) {
            fprintf(stderr, "%s: valid input rejected: %s: %s\n", path, nnq_status_name(s),
                    nnq_last_error());
            CHECK(!"a valid input was rejected");
        } else if (bad && s == NNQ_OK) {
            fprintf(stderr, "%s: malformed input accepted\n", path);
            CHECK(!"a malformed input was accepted");
        }
        n_ok += ok;
        n_bad += bad;
        n_crash += crash;
        free(buf);
        free(names[i]);
    }
    fprintf(stderr, "%-5s %3d ok, %3d bad, %3d crash inputs replayed\n", t->name, n_ok, n_bad,
            n_crash);
    /* Each target keeps valid seeds and malformed variants. */
    CHECK(n_ok > 0);
    CHECK(n_bad > 0);
}

int main(void) {
    for (int i = 0; i < fuzz_n_targets; i++) replay_target(&fuzz_targets[i]);
    /* The QDQ corpus's valid models run a forward pass, not just prepare. */
    CHECK(fuzz_qdq_passes > 0);
    return check_finish("test_corpus_replay");
}
