/* Compiled kernels of the frame LC2 cost (see lc2_kernels.py for the contract of each).
 *
 * Built by lc2_kernels.py with the system C compiler (-O3, no fast-math, no FMA
 * contraction: IEEE arithmetic as numpy's) into a shared library loaded with ctypes,
 * which releases the GIL during each call. Arrays are C-contiguous. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Trilinear p and g at samples first..last-1 under m (3x4 Reference mm -> continuous k, j, i).
 * pg: float32 [nk, nj, ni, 2]; points: [n, 3]; pix: flat index of each sample in out_p/out_g.
 * stats: (inside count, sum p, sum p^2, sum g, sum g^2) over the samples (outside: 0). */
void sample_features(const float *pg, int64_t nk, int64_t nj, int64_t ni, const double *m,
                     const double *points, int64_t first, int64_t last, const int64_t *pix,
                     double *out_p, double *out_g, double *stats)
{
    double n_in = 0.0, sp = 0.0, spp = 0.0, sg = 0.0, sgg = 0.0;
    for (int64_t s = first; s < last; s++) {
        double x = points[3 * s], y = points[3 * s + 1], z = points[3 * s + 2];
        double ck = m[0] * x + m[1] * y + m[2] * z + m[3];
        double cj = m[4] * x + m[5] * y + m[6] * z + m[7];
        double ci = m[8] * x + m[9] * y + m[10] * z + m[11];
        int64_t q = pix[s];
        if (!(ck >= 0.0 && cj >= 0.0 && ci >= 0.0 && ck <= (double)(nk - 1) && cj <= (double)(nj - 1)
              && ci <= (double)(ni - 1))) {
            out_p[q] = 0.0;
            out_g[q] = 0.0;
            continue;
        }
        int64_t k0 = nk > 1 ? ((int64_t)ck < nk - 2 ? (int64_t)ck : nk - 2) : 0;
        int64_t j0 = nj > 1 ? ((int64_t)cj < nj - 2 ? (int64_t)cj : nj - 2) : 0;
        int64_t i0 = ni > 1 ? ((int64_t)ci < ni - 2 ? (int64_t)ci : ni - 2) : 0;
        double fk = ck - (double)k0, fj = cj - (double)j0, fi = ci - (double)i0;
        int64_t k1 = nk > 1 ? k0 + 1 : k0, j1 = nj > 1 ? j0 + 1 : j0, i1 = ni > 1 ? i0 + 1 : i0;
        int64_t ks[4] = {k0, k0, k1, k1}, js[4] = {j0, j1, j0, j1};
        double ws[4] = {(1.0 - fk) * (1.0 - fj), (1.0 - fk) * fj, fk * (1.0 - fj), fk * fj};
        double a = 0.0, b = 0.0;
        for (int c = 0; c < 4; c++) {
            const float *row = pg + ((ks[c] * nj + js[c]) * ni) * 2;
            a += ws[c] * ((1.0 - fi) * (double)row[2 * i0] + fi * (double)row[2 * i1]);
            b += ws[c] * ((1.0 - fi) * (double)row[2 * i0 + 1] + fi * (double)row[2 * i1 + 1]);
        }
        out_p[q] = a;
        out_g[q] = b;
        n_in += 1.0;
        sp += a;
        spp += a * a;
        sg += b;
        sgg += b * b;
    }
    stats[0] = n_in;
    stats[1] = sp;
    stats[2] = spp;
    stats[3] = sg;
    stats[4] = sgg;
}

/* Per frame f in first..last-1: num[f] = sum w * LC2, den[f] = sum w over its patch centres.
 * p, g: raw sampled features [n, rows, cols], standardised here inside the fan, 0 outside;
 * u, mu, inv_vu, w: the US side (FixedUS, float64); cnt: fan pixels per patch; patch = 2 half + 1.
 * Returns 0, or -1 when out of memory. */
int lc2_frame_sums(const double *p, const double *g, const uint8_t *fan, const double *u, const double *mu,
                   const double *inv_vu, const double *w, const double *cnt, int64_t n, int64_t rows,
                   int64_t cols, int64_t half, double mean_p, double inv_sd_p, double mean_g, double inv_sd_g,
                   double eps, double rank_tol, int64_t first, int64_t last, double *num, double *den)
{
    (void)n;
    double *h = malloc(sizeof(double) * 7 * rows * cols);
    double *acc = malloc(sizeof(double) * 7 * cols);
    double *ps = malloc(sizeof(double) * 3 * cols);
    if (!h || !acc || !ps) {
        free(h); free(acc); free(ps);
        return -1;
    }
    double *gs = ps + cols, *us = ps + 2 * cols;
    int64_t plane = rows * cols;
    for (int64_t f = first; f < last; f++) {
        int64_t base = f * plane;
        for (int64_t r = 0; r < rows; r++) {
            int64_t o = base + r * cols;
            for (int64_t c = 0; c < cols; c++) {
                if (fan[o + c]) {
                    ps[c] = (p[o + c] - mean_p) * inv_sd_p;
                    gs[c] = (g[o + c] - mean_g) * inv_sd_g;
                    us[c] = u[o + c];
                } else {
                    ps[c] = gs[c] = us[c] = 0.0;
                }
            }
            double r0 = 0, r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0, r6 = 0;
            for (int64_t c = -half; c < cols; c++) {
                int64_t a = c + half, b = c - half - 1;
                if (a < cols) {
                    double x = ps[a], y = gs[a], v = us[a];
                    r0 += x; r1 += y; r2 += x * x; r3 += y * y; r4 += v * x; r5 += v * y; r6 += x * y;
                }
                if (b >= 0) {
                    double x = ps[b], y = gs[b], v = us[b];
                    r0 -= x; r1 -= y; r2 -= x * x; r3 -= y * y; r4 -= v * x; r5 -= v * y; r6 -= x * y;
                }
                if (c >= 0) {
                    int64_t t = r * cols + c;
                    h[t] = r0; h[plane + t] = r1; h[2 * plane + t] = r2; h[3 * plane + t] = r3;
                    h[4 * plane + t] = r4; h[5 * plane + t] = r5; h[6 * plane + t] = r6;
                }
            }
        }
        for (int64_t k = 0; k < 7 * cols; k++)
            acc[k] = 0.0;
        for (int64_t r = 0; r < half && r < rows; r++)
            for (int64_t k = 0; k < 7; k++)
                for (int64_t c = 0; c < cols; c++)
                    acc[k * cols + c] += h[k * plane + r * cols + c];
        double tot = 0.0, wsum = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t add = r + half, sub = r - half - 1;
            if (add < rows)
                for (int64_t k = 0; k < 7; k++)
                    for (int64_t c = 0; c < cols; c++)
                        acc[k * cols + c] += h[k * plane + add * cols + c];
            if (sub >= 0)
                for (int64_t k = 0; k < 7; k++)
                    for (int64_t c = 0; c < cols; c++)
                        acc[k * cols + c] -= h[k * plane + sub * cols + c];
            int64_t o = base + r * cols;
            for (int64_t c = 0; c < cols; c++) {
                double wt = w[o + c];
                if (wt <= 0.0)
                    continue;
                double inv_n = 1.0 / cnt[o + c];
                double mp = acc[c] * inv_n, mg = acc[cols + c] * inv_n;
                double vp = acc[2 * cols + c] * inv_n - mp * mp;
                double vg = acc[3 * cols + c] * inv_n - mg * mg;
                if (vp < 0.0) vp = 0.0;
                if (vg < 0.0) vg = 0.0;
                double m_u = mu[o + c];
                double cup = acc[4 * cols + c] * inv_n - m_u * mp;
                double cug = acc[5 * cols + c] * inv_n - m_u * mg;
                double cpg = acc[6 * cols + c] * inv_n - mp * mg;
                double det = vp * vg - cpg * cpg;
                double pv = vp * vg > eps ? vp * vg : eps;
                double expl;
                if (det > rank_tol * pv) {
                    expl = (vg * cup * cup - 2.0 * cpg * cup * cug + vp * cug * cug) / det;
                } else {   /* p and g collinear or one constant: the better one-regressor fit */
                    double e_p = vp > eps ? cup * cup / vp : 0.0;
                    double e_g = vg > eps ? cug * cug / vg : 0.0;
                    expl = e_p > e_g ? e_p : e_g;
                }
                double lc = expl * inv_vu[o + c];
                lc = lc < 0.0 ? 0.0 : (lc > 1.0 ? 1.0 : lc);
                tot += lc * wt;
                wsum += wt;
            }
        }
        num[f] = tot;
        den[f] = wsum;
    }
    free(h); free(acc); free(ps);
    return 0;
}

static float clipped(const float *hu, int64_t idx, float lo, float hi)
{
    float v = hu[idx];
    return v < lo ? lo : (v > hi ? hi : v);
}

/* np.gradient (float32 like numpy's) of the clipped HU along one axis at flat index idx:
 * pos = index along the axis, n = its length, stride = its flat stride. */
static float diff(const float *hu, int64_t idx, int64_t pos, int64_t n, int64_t stride, double spacing,
                  float lo, float hi)
{
    if (n < 2)
        return 0.0f;
    int64_t a = pos > 0 ? idx - stride : idx, b = pos < n - 1 ? idx + stride : idx;
    double step = (pos == 0 || pos == n - 1) ? spacing : 2.0 * spacing;
    float d = clipped(hu, b, lo, hi) - clipped(hu, a, lo, hi);
    return (float)((double)d / step);
}

/* out[..., 0] = p = clip((hu - lo) / (hi - lo), 0, 1) in float32; out[..., 1] = g = |gradient| of
 * clip(hu, clip_lo, clip_hi) (np.gradient with the isotropic spacing), as ct_feature_arrays. */
void feature_pairs(const float *hu, int64_t nk, int64_t nj, int64_t ni, double spacing, double lo, double hi,
                   double clip_lo, double clip_hi, float *out)
{
    float lo32 = (float)lo, width32 = (float)(hi - lo), c_lo = (float)clip_lo, c_hi = (float)clip_hi;
    for (int64_t k = 0; k < nk; k++)
        for (int64_t j = 0; j < nj; j++)
            for (int64_t i = 0; i < ni; i++) {
                int64_t idx = (k * nj + j) * ni + i;
                float v = (hu[idx] - lo32) / width32;
                out[2 * idx] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                float gk = diff(hu, idx, k, nk, nj * ni, spacing, c_lo, c_hi);
                float gj = diff(hu, idx, j, nj, ni, spacing, c_lo, c_hi);
                float gi = diff(hu, idx, i, ni, 1, spacing, c_lo, c_hi);
                float s = gk * gk + gj * gj + gi * gi;
                out[2 * idx + 1] = (float)sqrt((double)s);
            }
}
