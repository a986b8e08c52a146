/* imgfilt: a small image-processing library and its command, built with -msimd128.
 *
 * usage: imgfilt [FILE.pgm]   (default: a generated 256x192 test picture)
 *
 * Reads a binary PGM (P5, 8-bit) or generates a test picture, then runs the library's filters:
 * a 3x3 box blur, a Sobel edge magnitude, a brightness/contrast stretch with saturation, a
 * histogram and an Adler-32 checksum, and prints the checksums, histogram summaries and a tiny
 * ASCII preview. The row kernels use WebAssembly SIMD intrinsics (wasm_simd128.h) when built
 * with -msimd128, and plain C otherwise; clang also auto-vectorizes the plain loops. The output
 * must be the same either way, byte for byte: the tests compare the wasm build in wasmi, on
 * atoll's native code generator and in the kernel with this file built natively for the host.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

typedef struct {
    int w, h;
    uint8_t *px;
} image;

static image image_new(int w, int h) {
    image im = {w, h, calloc((size_t)w * (size_t)h, 1)};
    if (!im.px) {
        fprintf(stderr, "imgfilt: out of memory\n");
        exit(2);
    }
    return im;
}

/* A deterministic test picture: gradients, rings and noise. */
static image test_picture(int w, int h) {
    image im = image_new(w, h);
    uint32_t seed = 12345;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int dx = x - w / 2, dy = y - h / 2;
            int ring = ((dx * dx + dy * dy) / 97) & 1 ? 60 : 0;
            seed = seed * 1103515245u + 12345u;
            int noise = (int)((seed >> 16) & 31) - 16;
            int v = (x * 255) / w / 2 + (y * 255) / h / 3 + ring + noise;
            im.px[y * w + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    return im;
}

static int read_pgm(const char *path, image *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "imgfilt: cannot open %s\n", path);
        return 0;
    }
    int w, h, max;
    if (fscanf(f, "P5 %d %d %d", &w, &h, &max) != 3 || w <= 0 || h <= 0 || w > 4096 ||
        h > 4096 || max != 255 || fgetc(f) == EOF) {
        fprintf(stderr, "imgfilt: %s is not an 8-bit binary PGM\n", path);
        fclose(f);
        return 0;
    }
    *out = image_new(w, h);
    size_t n = (size_t)w * (size_t)h;
    if (fread(out->px, 1, n, f) != n) {
        fprintf(stderr, "imgfilt: %s is truncated\n", path);
        fclose(f);
        return 0;
    }
    fclose(f);
    return 1;
}

/* Sum of three rows at x..x+15 as 16-bit lanes (two halves), SIMD or scalar. */
static void box_row(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out, int w) {
    int x = 1;
#ifdef __wasm_simd128__
    /* out[x] = (sum of the 3x3 neighbourhood) / 9, rounded: 16 pixels per step. */
    const v128_t nine_recip = wasm_i32x4_splat(7282); /* round(65536 / 9) */
    for (; x + 16 < w; x += 16) {
        v128_t lo = wasm_i16x8_splat(0), hi = wasm_i16x8_splat(0);
        const uint8_t *rows[3] = {a, b, c};
        for (int r = 0; r < 3; r++) {
            for (int d = -1; d <= 1; d++) {
                v128_t v = wasm_v128_load(rows[r] + x + d);
                lo = wasm_i16x8_add(lo, wasm_u16x8_extend_low_u8x16(v));
                hi = wasm_i16x8_add(hi, wasm_u16x8_extend_high_u8x16(v));
            }
        }
        v128_t q[4] = {wasm_u32x4_extend_low_u16x8(lo), wasm_u32x4_extend_high_u16x8(lo),
                       wasm_u32x4_extend_low_u16x8(hi), wasm_u32x4_extend_high_u16x8(hi)};
        for (int i = 0; i < 4; i++) {
            /* (sum * 7282 + 32768) >> 16 == round(sum / 9) for sum <= 2295. */
            q[i] = wasm_u32x4_shr(
                wasm_i32x4_add(wasm_i32x4_mul(q[i], nine_recip), wasm_i32x4_splat(32768)), 16);
        }
        v128_t w16a = wasm_u16x8_narrow_i32x4(q[0], q[1]);
        v128_t w16b = wasm_u16x8_narrow_i32x4(q[2], q[3]);
        wasm_v128_store(out + x, wasm_u8x16_narrow_i16x8(w16a, w16b));
    }
#endif
    for (; x < w - 1; x++) {
        unsigned s = 0;
        for (int d = -1; d <= 1; d++) s += a[x + d] + b[x + d] + c[x + d];
        out[x] = (uint8_t)((s * 7282u + 32768u) >> 16);
    }
}

static image box_blur(const image *in) {
    image out = image_new(in->w, in->h);
    memcpy(out.px, in->px, (size_t)in->w * (size_t)in->h);
    for (int y = 1; y < in->h - 1; y++) {
        const uint8_t *a = in->px + (y - 1) * in->w;
        box_row(a, a + in->w, a + 2 * in->w, out.px + y * in->w, in->w);
    }
    return out;
}

/* |Gx| + |Gy| of the Sobel operator, saturated to 255 (scalar: clang vectorizes it). */
static image sobel(const image *in) {
    image out = image_new(in->w, in->h);
    int w = in->w;
    for (int y = 1; y < in->h - 1; y++) {
        const uint8_t *a = in->px + (y - 1) * w, *b = a + w, *c = b + w;
        uint8_t *o = out.px + y * w;
        for (int x = 1; x < w - 1; x++) {
            int gx = (a[x + 1] + 2 * b[x + 1] + c[x + 1]) - (a[x - 1] + 2 * b[x - 1] + c[x - 1]);
            int gy = (c[x - 1] + 2 * c[x] + c[x + 1]) - (a[x - 1] + 2 * a[x] + a[x + 1]);
            int m = (gx < 0 ? -gx : gx) + (gy < 0 ? -gy : gy);
            o[x] = (uint8_t)(m > 255 ? 255 : m);
        }
    }
    return out;
}

/* Contrast stretch: (v - lo) * 2 + 16, saturated, 16 pixels per step with SIMD. */
static void stretch(image *im, uint8_t lo) {
    size_t n = (size_t)im->w * (size_t)im->h, i = 0;
#ifdef __wasm_simd128__
    v128_t vlo = wasm_u8x16_splat(lo), bias = wasm_u8x16_splat(16);
    for (; i + 16 <= n; i += 16) {
        v128_t v = wasm_u8x16_sub_sat(wasm_v128_load(im->px + i), vlo);
        v = wasm_u8x16_add_sat(wasm_u8x16_add_sat(v, v), bias);
        wasm_v128_store(im->px + i, v);
    }
#endif
    for (; i < n; i++) {
        int v = im->px[i] > lo ? im->px[i] - lo : 0;
        v = v * 2 > 255 ? 255 : v * 2;
        v = v + 16 > 255 ? 255 : v + 16;
        im->px[i] = (uint8_t)v;
    }
}

static void histogram(const image *im, uint32_t hist[256]) {
    memset(hist, 0, 256 * sizeof hist[0]);
    size_t n = (size_t)im->w * (size_t)im->h;
    for (size_t i = 0; i < n; i++) hist[im->px[i]]++;
}

static uint32_t adler32(const image *im) {
    uint32_t a = 1, b = 0;
    size_t n = (size_t)im->w * (size_t)im->h;
    for (size_t i = 0; i < n; i++) {
        a = (a + im->px[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

static void report(const char *name, const image *im) {
    uint32_t hist[256];
    histogram(im, hist);
    unsigned lo = 0, hi = 255, mode = 0;
    while (lo < 255 && !hist[lo]) lo++;
    while (hi > 0 && !hist[hi]) hi--;
    for (unsigned v = 0; v < 256; v++)
        if (hist[v] > hist[mode]) mode = v;
    uint64_t sum = 0;
    for (unsigned v = 0; v < 256; v++) sum += (uint64_t)v * hist[v];
    size_t n = (size_t)im->w * (size_t)im->h;
    printf("%-8s adler32 %08x  min %3u max %3u mode %3u mean %6.2f\n", name,
           (unsigned)adler32(im), lo, hi, mode, (double)sum / (double)n);
}

static void preview(const image *im) {
    const char *ramp = " .:-=+*#%@";
    for (int y = 0; y < im->h; y += im->h / 8) {
        char line[65];
        int k = 0;
        for (int x = 0; x < im->w && k < 64; x += im->w / 48 ? im->w / 48 : 1)
            line[k++] = ramp[im->px[y * im->w + x] * 10 / 256];
        line[k] = 0;
        printf("  |%s|\n", line);
    }
}

int main(int argc, char **argv) {
    image im;
    if (argc > 1) {
        if (!read_pgm(argv[1], &im)) return 1;
    } else {
        im = test_picture(256, 192);
    }
    printf("imgfilt: %dx%d\n", im.w, im.h);
    report("input", &im);
    image blurred = box_blur(&im);
    report("blur", &blurred);
    image edges = sobel(&blurred);
    report("sobel", &edges);
    stretch(&blurred, 40);
    report("stretch", &blurred);
    preview(&edges);
    free(im.px);
    free(blurred.px);
    free(edges.px);
    return 0;
}
