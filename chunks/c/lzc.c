/* lzc: a small LZ77 compressor for WASI. Compresses each named file (or standard input for
 * "-"), decompresses the result, checks the round trip and prints sizes and CRC-32s.
 *
 * Format: a sequence of tokens. A literal run is a byte 0x00-0x7F (run length - 1) followed by
 * the bytes; a match is 0x80 | (length - 3) (lengths 3..130) followed by a 16-bit little-endian
 * distance (1..65535). Matches are found with a hash table of 4096 chains heads, 3-byte keys. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_BITS 12
#define MAX_MATCH 130
#define MIN_MATCH 3
#define WINDOW 65535
#define CHAIN_LIMIT 32

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static unsigned hash3(const uint8_t *p) {
    return ((p[0] << 8) ^ (p[1] << 4) ^ p[2]) * 2654435761u >> (32 - HASH_BITS);
}

static void flush_literals(const uint8_t *src, size_t start, size_t end, uint8_t *out, size_t *o) {
    while (start < end) {
        size_t run = end - start > 128 ? 128 : end - start;
        out[(*o)++] = (uint8_t)(run - 1);
        memcpy(out + *o, src + start, run);
        *o += run;
        start += run;
    }
}

/* Worst case output: n + n / 128 + 1 bytes. */
static size_t compress(const uint8_t *src, size_t n, uint8_t *out) {
    int32_t *head = malloc(sizeof(int32_t) << HASH_BITS);
    int32_t *prev = malloc(sizeof(int32_t) * (n ? n : 1));
    size_t o = 0, lit = 0, i = 0;
    if (!head || !prev) { fprintf(stderr, "lzc: out of memory\n"); exit(2); }
    for (size_t h = 0; h < (1u << HASH_BITS); h++) head[h] = -1;
    while (i + MIN_MATCH <= n) {
        unsigned h = hash3(src + i);
        size_t best_len = 0, best_dist = 0;
        int32_t cand = head[h];
        for (int chain = 0; cand >= 0 && chain < CHAIN_LIMIT; chain++) {
            size_t dist = i - (size_t)cand;
            if (dist > WINDOW) break;
            size_t len = 0, max = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            while (len < max && src[cand + len] == src[i + len]) len++;
            if (len > best_len) { best_len = len; best_dist = dist; }
            cand = prev[cand];
        }
        prev[i] = head[h];
        head[h] = (int32_t)i;
        if (best_len >= MIN_MATCH) {
            flush_literals(src, lit, i, out, &o);
            out[o++] = (uint8_t)(0x80 | (best_len - MIN_MATCH));
            out[o++] = (uint8_t)(best_dist & 0xFF);
            out[o++] = (uint8_t)(best_dist >> 8);
            for (size_t k = 1; k < best_len && i + k + MIN_MATCH <= n; k++) {
                unsigned hk = hash3(src + i + k);
                prev[i + k] = head[hk];
                head[hk] = (int32_t)(i + k);
            }
            i += best_len;
            lit = i;
        } else {
            i++;
        }
    }
    flush_literals(src, lit, n, out, &o);
    free(head);
    free(prev);
    return o;
}

/* Returns the decompressed size, or (size_t)-1 on a malformed stream. */
static size_t decompress(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t t = in[i++];
        if (t < 0x80) {
            size_t run = (size_t)t + 1;
            if (i + run > n || o + run > cap) return (size_t)-1;
            memcpy(out + o, in + i, run);
            i += run;
            o += run;
        } else {
            size_t len = (size_t)(t & 0x7F) + MIN_MATCH;
            if (i + 2 > n) return (size_t)-1;
            size_t dist = in[i] | ((size_t)in[i + 1] << 8);
            i += 2;
            if (dist == 0 || dist > o || o + len > cap) return (size_t)-1;
            for (size_t k = 0; k < len; k++, o++) out[o] = out[o - dist];
        }
    }
    return o;
}

static uint8_t *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    *len = n;
    return buf;
}

static int process(const char *name) {
    FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
    if (!f) { perror(name); return 1; }
    size_t n;
    uint8_t *src = read_all(f, &n);
    if (f != stdin) fclose(f);
    if (!src) { fprintf(stderr, "lzc: out of memory\n"); return 2; }
    uint8_t *packed = malloc(n + n / 128 + 16);
    uint8_t *back = malloc(n + 1);
    size_t m = compress(src, n, packed);
    size_t r = decompress(packed, m, back, n + 1);
    int ok = r == n && memcmp(src, back, n) == 0;
    printf("%-24s %8zu -> %8zu bytes (%5.1f%%) crc %08x packed-crc %08x %s\n", name, n, m,
           n ? 100.0 * (double)m / (double)n : 0.0, crc32(src, n), crc32(packed, m),
           ok ? "ok" : "MISMATCH");
    free(src);
    free(packed);
    free(back);
    return ok ? 0 : 3;
}

int main(int argc, char **argv) {
    crc_init();
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE... (- for standard input)\n", argv[0]);
        return 64;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        int s = process(argv[i]);
        if (s > status) status = s;
    }
    return status;
}
