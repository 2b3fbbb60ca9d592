/* Exact Euclidean distance transform on an anisotropic grid (see distance_map.py for the contract).
 *
 * Separable squared-distance transform (lower envelope of parabolas along each axis, in the
 * manner of Felzenszwalb and Huttenlocher), in float64. Each voxel's squared distance is
 * accumulated as ((dk sk)^2 + (dj sj)^2) + (di si)^2 of its nearest feature voxel, the terms
 * and their order being those of scipy.ndimage.distance_transform_edt's final sum.
 * Arrays are C-contiguous [nk, nj, ni]. Lines are split between callers by ranges, so
 * Python threads share the work (ctypes releases the GIL). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Pass along k on the binary input: out = (dk sk)^2 to the nearest feature (input == 0) in the
 * column, +inf without one. Columns (j, i) with flat index j * ni + i in [c0, c1), swept plane by
 * plane (contiguous rows). Returns 0, or -1 when out of memory. */
int edt_pass_k(const uint8_t *input, int64_t nk, int64_t nj, int64_t ni, double sk, int64_t c0, int64_t c1,
               double *out)
{
    const int64_t plane = nj * ni, w = c1 - c0;
    int64_t *last = malloc(sizeof(int64_t) * (size_t)(w > 0 ? w : 1));
    if (!last)
        return -1;
    for (int64_t c = 0; c < w; c++)
        last[c] = -1;
    for (int64_t k = 0; k < nk; k++) {           /* forward: distance to the last feature above */
        const uint8_t *in = input + k * plane + c0;
        double *o = out + k * plane + c0;
        for (int64_t c = 0; c < w; c++) {
            if (in[c] == 0) {
                last[c] = k;
                o[c] = 0.0;
            } else if (last[c] >= 0) {
                double t = (double)(k - last[c]) * sk;
                o[c] = t * t;
            } else {
                o[c] = INFINITY;
            }
        }
    }
    for (int64_t c = 0; c < w; c++)
        last[c] = -1;
    for (int64_t k = nk - 1; k >= 0; k--) {      /* backward: keep the nearer feature below */
        const uint8_t *in = input + k * plane + c0;
        double *o = out + k * plane + c0;
        for (int64_t c = 0; c < w; c++) {
            if (in[c] == 0) {
                last[c] = k;
            } else if (last[c] >= 0) {
                double t = (double)(last[c] - k) * sk;
                double v = t * t;
                if (v < o[c])
                    o[c] = v;
            }
        }
    }
    free(last);
    return 0;
}

/* One line of n values f (stride apart in data) replaced by min_q ((x - q) s)^2 + f[q].
 * v, z, g: scratch of n, n + 1 and n. Values +inf never enter the envelope. */
static void envelope_line(double *data, int64_t n, int64_t stride, double s, int64_t *v, double *z, double *g)
{
    const double s2 = s * s;
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        g[q] = data[q * stride];
        if (!isfinite(g[q]))
            continue;
        double fq = g[q] + s2 * (double)q * (double)q;
        while (k >= 0) {
            int64_t p = v[k];
            double x = (fq - (g[p] + s2 * (double)p * (double)p)) / (2.0 * s2 * (double)(q - p));
            if (x <= z[k]) {
                k--;
            } else {
                k++;
                v[k] = q;
                z[k] = x;
                z[k + 1] = INFINITY;
                break;
            }
        }
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -INFINITY;
            z[1] = INFINITY;
        }
    }
    if (k < 0)
        return;                                  /* no finite value: the line stays +inf */
    int64_t j = 0;
    for (int64_t x = 0; x < n; x++) {
        while (z[j + 1] < (double)x)
            j++;
        double t = (double)(x - v[j]) * s;
        data[x * stride] = t * t + g[v[j]];
    }
}

/* Passes along j and then i, then the square root, for the slices k in [k0, k1). Returns 0, or -1
 * when out of memory. */
int edt_pass_ji(double *out, int64_t nk, int64_t nj, int64_t ni, double sj, double si, int64_t k0, int64_t k1)
{
    int64_t n = nj > ni ? nj : ni;
    int64_t *v = malloc(sizeof(int64_t) * (size_t)n);
    double *z = malloc(sizeof(double) * (size_t)(n + 1));
    double *g = malloc(sizeof(double) * (size_t)n);
    if (!v || !z || !g) {
        free(v);
        free(z);
        free(g);
        return -1;
    }
    (void)nk;
    for (int64_t k = k0; k < k1; k++) {
        double *slice = out + k * nj * ni;
        for (int64_t i = 0; i < ni; i++)
            envelope_line(slice + i, nj, ni, sj, v, z, g);
        for (int64_t j = 0; j < nj; j++) {
            double *row = slice + j * ni;
            envelope_line(row, ni, 1, si, v, z, g);
            for (int64_t i = 0; i < ni; i++)
                row[i] = sqrt(row[i]);
        }
    }
    free(v);
    free(z);
    free(g);
    return 0;
}
