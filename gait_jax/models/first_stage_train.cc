// The small network's first stage in training, and its gradient (XLA:CPU custom calls;
// first_stage.py says when the model uses them):
//
//   z = conv(x, w), a = (z − μ)·scale/√(σ² + eps) + bias with μ, σ² the batch statistics of z
//   u = relu(mask · a) + mask · ((x − x̄)·A + B)      (the downsample's BN of x·gain: A, B, x̄)
//   out = maxpool2x2(relu(u))
//
// x [N, T, H, W] (one channel, padded frames zero), mask [N, T] (0 or 1), w [kt, kh, kw, 1, C]
// ("same" zero padding). XLA's modules write z, a, u and their gradients at full resolution,
// several passes of C channels over every pixel; here a frame's z lives in a buffer the size of
// one frame (L2), and only the pooled output, a byte per window and channel saying which input
// won it, and the statistics leave the kernel.
//
// The gradient needs no second pass over the batch: with gy the stem BN output's gradient
// (G at each window's winner where it was active, else 0), BN's backward is
//   dz = scale·inv·(gy − mask·(Σgy + x̂·Σgy·x̂)/M),  x̂ = (z − μ)·inv,
// and the kernel's gradient Σ dz·x[tap] splits into per-tap sums that each frame can add up
// alone: Σ gy·x[tap], Σ mask·(z − μ)·x[tap] and Σ mask·x[tap]. Every sum is a float sum over
// one image row (or window row), added into double in frame order, so the result does not
// depend on the number of threads.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <immintrin.h>

#include "first_stage_simd.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using gait_first_stage::Blocks;
using gait_first_stage::kLanes;
using gait_first_stage::Load;
using gait_first_stage::Max;
using gait_first_stage::Splat;
using gait_first_stage::V8;

typedef int32_t V8i __attribute__((vector_size(kLanes * sizeof(int32_t))));

constexpr double kEps = 1e-5;  // BN's epsilon (batch_norm.py: BN_EPS)
// Frames whose sums share one slot, added in frame order: slots are summed in their order, so
// the result does not depend on the thread count, and the slots take a quarter of the memory
// one a frame would (thousands of frames × 27 taps × 64 channels in double at the GREW widths).
constexpr int64_t kChunk = 4;

struct Geometry {
  int64_t n, t, h, w, c, kt, kh, kw;
  int64_t blocks, cp, hp, wp, taps;  // derived: channel blocks, padded channels, padded frame
  Geometry(int64_t n_, int64_t t_, int64_t h_, int64_t w_, int64_t c_, int64_t kt_,
           int64_t kh_, int64_t kw_)
      : n(n_), t(t_), h(h_), w(w_), c(c_), kt(kt_), kh(kh_), kw(kw_),
        blocks((c_ + kLanes - 1) / kLanes), cp(blocks * kLanes), hp(h_ + kh_ - 1),
        wp(w_ + kw_ - 1), taps(kt_ * kh_ * kw_) {}
  int64_t frames() const { return n * t; }
  // Frames chunk·kChunk up to chunk_end(chunk) add their sums into slot `chunk` of chunks().
  int64_t chunks() const { return (frames() + kChunk - 1) / kChunk; }
  int64_t chunk_end(int64_t chunk) const { return std::min(frames(), (chunk + 1) * kChunk); }
  int64_t pooled() const { return (h / 2) * (w / 2); }  // windows a frame
};

// 1/√(σ² + eps) as both passes use it.
inline float Inv(float var) { return static_cast<float>(1.0 / std::sqrt(var + kEps)); }

// `*p` in every lane, loaded so (a value already in a register takes a shuffle port per
// broadcast, and those ports limited the convolution).
__attribute__((always_inline)) inline V8 Broadcast(const float* p) {
  return reinterpret_cast<V8>(_mm256_broadcast_ss(p));
}

// Input column Q of a row, broadcast once, added into every output column k = Q − dw it reaches
// (k < N) with tap dw's weights: every index a template constant, so that the sums stay in
// registers (with loops, GCC kept them in memory).
template <int N, int Q, int... Dw>
__attribute__((always_inline)) inline void InputColumn(V8 (&acc)[N], const V8* wv,
                                                       const float* row,
                                                       std::integer_sequence<int, Dw...>) {
  const V8 v = Broadcast(row + Q);
  ((Q - Dw >= 0 && Q - Dw < N
        ? (void)(acc[(Q - Dw >= 0 && Q - Dw < N) ? Q - Dw : 0] += v * wv[Dw])
        : (void)0),
   ...);
}

template <int N, int KW, int... Qs>
__attribute__((always_inline)) inline void InputRow(V8 (&acc)[N], const V8* wv, const float* row,
                                                    std::integer_sequence<int, Qs...>) {
  (InputColumn<N, Qs>(acc, wv, row, std::make_integer_sequence<int, KW>{}), ...);
}

__attribute__((always_inline)) inline void Put(float* dst, V8 v) {  // by value: no address
  std::memcpy(dst, &v, sizeof(v));                                   // of the sums is taken
}

// z at columns col + K... of row r, one channel block (`wts` at the block's first lane).
template <int KT, int KH, int KW, int... K>
__attribute__((always_inline)) inline void Span(const Geometry& g, const float* wts,
                                                const float* pad, int64_t r, int64_t col,
                                                float* z, std::integer_sequence<int, K...>) {
  constexpr int n = sizeof...(K);
  V8 acc[n] = {((void)K, V8{})...};
  for (int dt = 0; dt < KT; ++dt)
    for (int dh = 0; dh < KH; ++dh) {
      V8 wv[KW];
      for (int dw = 0; dw < KW; ++dw) wv[dw] = Load(wts + ((dt * KH + dh) * KW + dw) * g.cp);
      InputRow<n, KW>(acc, wv, pad + (dt * g.hp + r + dh) * g.wp + col,
                      std::make_integer_sequence<int, n + KW - 1>{});
    }
  (Put(z + (r * g.w + col + K) * g.cp, acc[K]), ...);
}

// z of one frame into `z` ([h][w][cp]): 8 columns at a time, the kernel's size a template
// argument so that the tap loops are expanded.
template <int KT, int KH, int KW>
void Convolve(const Geometry& g, const float* wts, const float* pad, float* z) {
  for (int64_t b = 0; b < g.blocks; ++b)
    for (int64_t r = 0; r < g.h; ++r) {
      const float* wb = wts + b * kLanes;
      float* zb = z + b * kLanes;
      int64_t col = 0;
      for (; col + 8 <= g.w; col += 8)
        Span<KT, KH, KW>(g, wb, pad, r, col, zb, std::make_integer_sequence<int, 8>{});
      for (; col + 4 <= g.w; col += 4)
        Span<KT, KH, KW>(g, wb, pad, r, col, zb, std::make_integer_sequence<int, 4>{});
      for (; col < g.w; ++col)
        Span<KT, KH, KW>(g, wb, pad, r, col, zb, std::make_integer_sequence<int, 1>{});
    }
}

using ConvolveFn = void (*)(const Geometry&, const float*, const float*, float*);

// The single-convolution candidates' kernels (candidates.py: ops 0, 1, 2).
ConvolveFn ConvolveFor(const Geometry& g) {
  if (g.kt == 3 && g.kh == 3 && g.kw == 3) return Convolve<3, 3, 3>;
  if (g.kt == 3 && g.kh == 1 && g.kw == 3) return Convolve<3, 1, 3>;
  if (g.kt == 3 && g.kh == 3 && g.kw == 1) return Convolve<3, 3, 1>;
  return nullptr;
}

// z of frame f (sequence f / T, frame f % T) into `z`, its padded input frames into `pad`.
void FrameConvolution(const Geometry& g, ConvolveFn convolve, const float* wts, const float* x,
                      int64_t f, float* pad, float* z) {
  gait_first_stage::FillPad(x, g.t, g.h, g.w, g.kt, g.kh, g.kw, f / g.t, f % g.t, pad);
  convolve(g, wts, pad, z);
}

// The sum of `chunks` slots of `width` doubles, slot by slot in order: the same sums on any
// thread count.
std::vector<double> InOrder(const std::vector<double>& slots, int64_t width) {
  std::vector<double> total(width, 0.0);
  for (size_t at = 0; at < slots.size(); at += width)
    for (int64_t k = 0; k < width; ++k) total[k] += slots[at + k];
  return total;
}

// Adds the 8 lanes of `v` into `dst[0..8)`, four doubles at a time.
__attribute__((always_inline)) inline void AddLanes(double* dst, V8 v) {
  const __m256 f = reinterpret_cast<__m256>(v);
  _mm256_storeu_pd(dst, _mm256_add_pd(_mm256_loadu_pd(dst),
                                      _mm256_cvtps_pd(_mm256_castps256_ps128(f))));
  _mm256_storeu_pd(dst + 4, _mm256_add_pd(_mm256_loadu_pd(dst + 4),
                                          _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1))));
}

// Per frame, z's sums m·Σz and m·Σz² ([2][cp]), each a float sum over a row added into double.
void FrameMoments(const Geometry& g, const float* z, float m, double* out) {
  for (int64_t b = 0; b < g.blocks; ++b)
    for (int64_t r = 0; r < g.h; ++r) {
      V8 s1[2] = {V8{}, V8{}}, s2[2] = {V8{}, V8{}};  // even and odd columns: shorter chains
      const float* zr = z + r * g.w * g.cp + b * kLanes;
      int64_t col = 0;
      for (; col + 2 <= g.w; col += 2) {
        const V8 v0 = Load(zr + col * g.cp), v1 = Load(zr + (col + 1) * g.cp);
        s1[0] += v0;
        s2[0] += v0 * v0;
        s1[1] += v1;
        s2[1] += v1 * v1;
      }
      if (col < g.w) {
        const V8 v0 = Load(zr + col * g.cp);
        s1[0] += v0;
        s2[0] += v0 * v0;
      }
      AddLanes(out + b * kLanes, (s1[0] + s1[1]) * m);
      AddLanes(out + g.cp + b * kLanes, (s2[0] + s2[1]) * m);
    }
}

// The operands both passes read, channel-padded to cp: w [taps][cp], the stem BN's scale and
// bias, the downsample's A and B, and x̄.
struct Operands {
  std::vector<float> w, scale, bias, down_a, down_b;
  float xmean;
};

Operands Read(const Geometry& g, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> stem,
              ffi::Buffer<ffi::F32> down, ffi::Buffer<ffi::F32> xmean) {
  Operands o;
  o.w = Blocks(w.typed_data(), g.c, g.taps);
  o.scale = Blocks(stem.typed_data(), g.c, 1);
  o.bias = Blocks(stem.typed_data() + g.c, g.c, 1);
  o.down_a = Blocks(down.typed_data(), g.c, 1);
  o.down_b = Blocks(down.typed_data() + g.c, g.c, 1);
  o.xmean = xmean.typed_data()[0];
  return o;
}

// The shapes every call checks: x [N, T, H, W], mask [N, T], w [kt, kh, kw, 1, C] of a
// single-convolution candidate, stem and down [2, C], xmean [1].
ffi::ErrorOr<Geometry> Check(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& mask,
                             ffi::Buffer<ffi::F32>& w, ffi::Buffer<ffi::F32>& stem,
                             ffi::Buffer<ffi::F32>& down, ffi::Buffer<ffi::F32>& xmean) {
  const auto xd = x.dimensions(), wd = w.dimensions();
  using Failure = ffi::Unexpected<ffi::Error>;
  if (xd.size() != 4 || wd.size() != 5 || wd[3] != 1)
    return Failure(ffi::Error::InvalidArgument(
        "first stage (training): expected x [N, T, H, W], w [kt, kh, kw, 1, C]"));
  Geometry g(xd[0], xd[1], xd[2], xd[3], wd[4], wd[0], wd[1], wd[2]);
  if (ConvolveFor(g) == nullptr)
    return Failure(ffi::Error::InvalidArgument(
        "first stage (training): kernels (3,3,3), (3,1,3), (3,3,1) only"));
  if (static_cast<int64_t>(mask.element_count()) != g.n * g.t ||
      static_cast<int64_t>(stem.element_count()) != 2 * g.c ||
      static_cast<int64_t>(down.element_count()) != 2 * g.c || xmean.element_count() != 1 ||
      g.h < 2 || g.w < 2)
    return Failure(
        ffi::Error::InvalidArgument("first stage (training): operand shapes do not match"));
  return g;
}

// The valid positions BN counts: Σ mask · H · W.
double Count(const Geometry& g, const float* mask) {
  double frames = 0.0;
  for (int64_t f = 0; f < g.frames(); ++f) frames += mask[f];
  return frames * static_cast<double>(g.h * g.w);
}

// One frame's windows from its z: the pooled output and each window's code per channel (the
// winner 0..3 in row-major order, the first maximum winning ties, + 4 where the stem's ReLU
// passed there; −1 where relu(u) was 0 at the winner, so no gradient flows).
void PoolFrame(const Geometry& g, const Operands& o, const float* z, const float* x, float m,
               const std::vector<float>& mean, const std::vector<float>& a, float* out,
               int8_t* code) {
  const int64_t ho = g.h / 2, wo = g.w / 2;
  const V8 mv = Splat(m);
  for (int64_t i = 0; i < ho; ++i)
    for (int64_t j = 0; j < wo; ++j)
      for (int64_t b = 0; b < g.blocks; ++b) {
        const int64_t off = b * kLanes;
        const V8 mu = Load(&mean[off]), av = Load(&a[off]), bias = Load(&o.bias[off]);
        const V8 da = Load(&o.down_a[off]), db = Load(&o.down_b[off]);
        V8 v[4], act[4];
        for (int e = 0; e < 4; ++e) {
          const int64_t r = 2 * i + e / 2, col = 2 * j + e % 2;
          act[e] = ((Load(z + (r * g.w + col) * g.cp + off) - mu) * av + bias) * mv;
          const V8 down = (Splat(x[r * g.w + col] - o.xmean) * da + db) * mv;
          v[e] = Max(Max(act[e], V8{}) + down, V8{});
        }
        const V8 top = Max(v[0], v[1]), bottom = Max(v[2], v[3]), best = Max(top, bottom);
        // Comparisons are lane masks (−1 or 0): the winner as _window_argmax picks it.
        const V8i lower = bottom > top, right_bottom = v[3] > v[2], right_top = v[1] > v[0];
        const V8i e = lower ? 2 - right_bottom : -right_top;
        const V8 active = lower ? (right_bottom ? act[3] : act[2]) : (right_top ? act[1] : act[0]);
        const V8i c = best > V8{} ? e + ((active > V8{}) & 4) : V8i{} - 1;
        const int64_t at = (i * wo + j) * g.c + off, lanes = std::min<int64_t>(kLanes, g.c - off);
        gait_first_stage::Store(out + at, best, lanes);
        for (int l = 0; l < lanes; ++l) code[at + l] = static_cast<int8_t>(c[l]);
      }
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> mask,
                   ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> stem,
                   ffi::Buffer<ffi::F32> down, ffi::Buffer<ffi::F32> xmean,
                   ffi::ResultBuffer<ffi::F32> out, ffi::ResultBuffer<ffi::S8> code,
                   ffi::ResultBuffer<ffi::F32> stats) {
  auto checked = Check(x, mask, w, stem, down, xmean);
  if (checked.has_error()) return checked.error();
  const Geometry g = checked.value();
  const auto od = out->dimensions();
  if (od.size() != 5 || od[2] != g.h / 2 || od[3] != g.w / 2 || od[4] != g.c ||
      code->element_count() != out->element_count() ||
      static_cast<int64_t>(stats->element_count()) != 2 * g.c)
    return ffi::Error::InvalidArgument("first stage (training): result shapes do not match");
  const Operands o = Read(g, w, stem, down, xmean);
  const ConvolveFn convolve = ConvolveFor(g);
  const float* xs = x.typed_data();
  const float* ms = mask.typed_data();
  const int64_t frames = g.frames(), frame_px = g.h * g.w;
  const int64_t chunks = g.chunks();
  std::vector<double> moments(chunks * 2 * g.cp, 0.0);
#pragma omp parallel
  {
    std::vector<float> pad(g.kt * g.hp * g.wp), z(frame_px * g.cp);
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int64_t f = chunk * kChunk; f < g.chunk_end(chunk); ++f) {
        if (ms[f] == 0.0f) continue;
        FrameConvolution(g, convolve, o.w.data(), xs, f, pad.data(), z.data());
        FrameMoments(g, z.data(), ms[f], &moments[chunk * 2 * g.cp]);
      }
  }
  const double count = Count(g, ms);
  const std::vector<double> total = InOrder(moments, 2 * g.cp);
  std::vector<float> mean(g.cp, 0.0f), a(g.cp, 0.0f);
  float* st = stats->typed_data();
  for (int64_t ch = 0; ch < g.c; ++ch) {
    const double s1 = total[ch], s2 = total[g.cp + ch];
    const double mu = count > 0 ? s1 / count : 0.0;
    const double var = count > 0 ? std::max(s2 / count - mu * mu, 0.0) : 0.0;
    st[ch] = mean[ch] = static_cast<float>(mu);
    st[g.c + ch] = static_cast<float>(var);
    a[ch] = o.scale[ch] * Inv(st[g.c + ch]);
  }
  float* os = out->typed_data();
  int8_t* cs = code->typed_data();
  const int64_t out_frame = g.pooled() * g.c;
#pragma omp parallel
  {
    std::vector<float> pad(g.kt * g.hp * g.wp), z(frame_px * g.cp);
#pragma omp for schedule(static)
    for (int64_t f = 0; f < frames; ++f) {
      if (ms[f] == 0.0f) {
        std::fill(os + f * out_frame, os + (f + 1) * out_frame, 0.0f);
        std::fill(cs + f * out_frame, cs + (f + 1) * out_frame, int8_t{-1});
        continue;
      }
      FrameConvolution(g, convolve, o.w.data(), xs, f, pad.data(), z.data());
      PoolFrame(g, o, z.data(), xs + f * frame_px, ms[f], mean, a, os + f * out_frame,
                cs + f * out_frame);
    }
  }
  return ffi::Error::Success();
}

// Where a frame adds its share of the gradient's sums (its chunk's slot), in double: per channel
// Σgy, Σgy·(z − μ), Σgd and Σgd·(x − x̄) ([4][cp]); per tap and channel Σgy·x[tap] and
// Σm·(z − μ)·x[tap] ([2][taps][cp]); per tap Σm·x[tap] ([taps]).
struct FrameSums {
  double* channel;
  double* tap_gy;
  double* tap_zc;
  double* tap_x;
};

// One frame's gradient routes: gy ([h][w][cp]: G·m at each window's winner where the stem was
// active, else 0), z turned into zc = m·(z − μ) in place, and the per-channel sums Σgy,
// Σgy·(z − μ), Σgd and Σgd·(x − x̄) (gd: G·m at every winner), window row by window row.
void Routes(const Geometry& g, const Operands& o, const float* grad, const int8_t* code,
            const float* x, float m, const std::vector<float>& mean, float* z, float* gy,
            const FrameSums& s) {
  const int64_t ho = g.h / 2, wo = g.w / 2;
  const V8 mv = Splat(m);
  for (int64_t b = 0; b < g.blocks; ++b) {
    const int64_t off = b * kLanes, lanes = std::min<int64_t>(kLanes, g.c - off);
    const V8 mu = Load(&mean[off]);
    for (int64_t i = 0; i < ho; ++i) {
      V8 sgy = V8{}, sgyz = V8{}, sgd = V8{}, sgdx = V8{};
      for (int64_t j = 0; j < wo; ++j) {
        const int64_t win = (i * wo + j) * g.c + off;
        V8 gv = V8{};
        V8i cv = V8i{} - 1;
        for (int l = 0; l < lanes; ++l) {
          gv[l] = grad[win + l];
          cv[l] = code[win + l];
        }
        gv *= mv;
        for (int e = 0; e < 4; ++e) {
          const int64_t at = ((2 * i + e / 2) * g.w + 2 * j + e % 2) * g.cp + off;
          const V8i won = (cv >= 0) & ((cv & 3) == e);
          const V8 gd = won ? gv : V8{};
          const V8 gs = (won & ((cv & 4) != 0)) ? gv : V8{};
          const V8 zc = Load(z + at) - mu;
          sgd += gd;
          sgdx += gd * Splat(x[(2 * i + e / 2) * g.w + 2 * j + e % 2] - o.xmean);
          sgy += gs;
          sgyz += gs * zc;
          std::memcpy(gy + at, &gs, sizeof(V8));
          const V8 zm = zc * mv;
          std::memcpy(z + at, &zm, sizeof(V8));
        }
      }
      AddLanes(s.channel + off, sgy);
      AddLanes(s.channel + g.cp + off, sgyz);
      AddLanes(s.channel + 2 * g.cp + off, sgd);
      AddLanes(s.channel + 3 * g.cp + off, sgdx);
    }
    // The last row and column of odd frames are in no window: no gradient reaches them.
    for (int64_t r = 0; r < g.h; ++r)
      for (int64_t col = (r < 2 * ho ? 2 * wo : 0); col < g.w; ++col) {
        const int64_t at = (r * g.w + col) * g.cp + off;
        const V8 zm = (Load(z + at) - mu) * mv;
        std::memcpy(z + at, &zm, sizeof(V8));
        std::memset(gy + at, 0, sizeof(V8));
      }
  }
}

// One row's sums for the horizontal taps D...: a1[d] += gy·x[col + d], a2[d] += zc·x[col + d]
// over the columns, even and odd columns apart (four chains a tap: the FMA's latency hidden);
// every index a template constant, so that the sums stay in registers.
template <int... D>
__attribute__((always_inline)) inline void TapRow(const float* row, const float* gp,
                                                  const float* zp, int64_t w, int64_t cp,
                                                  V8 (&a1)[sizeof...(D)], V8 (&a2)[sizeof...(D)],
                                                  std::integer_sequence<int, D...>) {
  constexpr int kw = sizeof...(D);
  V8 b1[kw], b2[kw];
  ((b1[D] = V8{}, b2[D] = V8{}), ...);
  int64_t col = 0;
  for (; col + 2 <= w; col += 2) {
    const V8 g0 = Load(gp + col * cp), z0 = Load(zp + col * cp);
    const V8 g1 = Load(gp + (col + 1) * cp), z1 = Load(zp + (col + 1) * cp);
    ((a1[D] += g0 * Broadcast(row + col + D), a2[D] += z0 * Broadcast(row + col + D),
      b1[D] += g1 * Broadcast(row + col + 1 + D), b2[D] += z1 * Broadcast(row + col + 1 + D)),
     ...);
  }
  if (col < w) {
    const V8 g0 = Load(gp + col * cp), z0 = Load(zp + col * cp);
    ((a1[D] += g0 * Broadcast(row + col + D), a2[D] += z0 * Broadcast(row + col + D)), ...);
  }
  ((a1[D] += b1[D], a2[D] += b2[D]), ...);
}

// The per-tap sums of one frame. Row by row (the rows of gy and zc in L1), the horizontal taps
// of each (dt, dh) side by side: 2·KW independent sums a column.
template <int KW>
void TapSumsOf(const Geometry& g, const float* pad, const float* gy, const float* zc,
               const FrameSums& s) {
  for (int64_t r = 0; r < g.h; ++r)
    for (int64_t b = 0; b < g.blocks; ++b)
      for (int64_t dt = 0; dt < g.kt; ++dt)
        for (int64_t dh = 0; dh < g.kh; ++dh) {
          V8 a1[KW], a2[KW];
          for (int dw = 0; dw < KW; ++dw) a1[dw] = a2[dw] = V8{};
          TapRow(pad + (dt * g.hp + r + dh) * g.wp, gy + r * g.w * g.cp + b * kLanes,
                 zc + r * g.w * g.cp + b * kLanes, g.w, g.cp, a1, a2,
                 std::make_integer_sequence<int, KW>{});
          for (int dw = 0; dw < KW; ++dw) {
            const int64_t at = ((dt * g.kh + dh) * KW + dw) * g.cp + b * kLanes;
            AddLanes(s.tap_gy + at, a1[dw]);
            AddLanes(s.tap_zc + at, a2[dw]);
          }
        }
}

// Σ m·x[tap] of one frame for every tap: each padded frame's column sums over all its rows,
// less the rows a tap's vertical offset leaves out, then summed over the columns it reads.
void TapInputSums(const Geometry& g, const float* pad, float m, const FrameSums& s) {
  std::vector<float> total(g.wp), cols(g.wp);
  for (int64_t dt = 0; dt < g.kt; ++dt) {
    const float* frame = pad + dt * g.hp * g.wp;
    std::fill(total.begin(), total.end(), 0.0f);
    for (int64_t r = 0; r < g.hp; ++r)
      for (int64_t col = 0; col < g.wp; ++col) total[col] += frame[r * g.wp + col];
    for (int64_t dh = 0; dh < g.kh; ++dh) {
      cols = total;
      for (int64_t r = 0; r < g.hp; ++r) {
        if (r >= dh && r < dh + g.h) continue;
        for (int64_t col = 0; col < g.wp; ++col) cols[col] -= frame[r * g.wp + col];
      }
      for (int64_t dw = 0; dw < g.kw; ++dw) {
        double sum = 0.0;
        for (int64_t col = dw; col < dw + g.w; ++col) sum += cols[col];
        s.tap_x[(dt * g.kh + dh) * g.kw + dw] += sum * m;
      }
    }
  }
}

void TapSums(const Geometry& g, const float* pad, const float* gy, const float* zc, float m,
             const FrameSums& s) {
  if (g.kw == 3)
    TapSumsOf<3>(g, pad, gy, zc, s);
  else
    TapSumsOf<1>(g, pad, gy, zc, s);
  TapInputSums(g, pad, m, s);
}

ffi::Error Backward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> mask,
                    ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> stem,
                    ffi::Buffer<ffi::F32> down, ffi::Buffer<ffi::F32> xmean,
                    ffi::Buffer<ffi::F32> stats, ffi::Buffer<ffi::S8> code,
                    ffi::Buffer<ffi::F32> grad, ffi::ResultBuffer<ffi::F32> dw,
                    ffi::ResultBuffer<ffi::F32> dparams) {
  auto checked = Check(x, mask, w, stem, down, xmean);
  if (checked.has_error()) return checked.error();
  const Geometry g = checked.value();
  const int64_t out_frame = g.pooled() * g.c;
  if (static_cast<int64_t>(stats.element_count()) != 2 * g.c ||
      static_cast<int64_t>(code.element_count()) != g.frames() * out_frame ||
      grad.element_count() != code.element_count() ||
      static_cast<int64_t>(dw->element_count()) != g.taps * g.c ||
      static_cast<int64_t>(dparams->element_count()) != 4 * g.c)
    return ffi::Error::InvalidArgument("first stage (training gradient): shapes do not match");
  const Operands o = Read(g, w, stem, down, xmean);
  const ConvolveFn convolve = ConvolveFor(g);
  const float* xs = x.typed_data();
  const float* ms = mask.typed_data();
  const float* st = stats.typed_data();
  std::vector<float> mean(g.cp, 0.0f);
  std::copy(st, st + g.c, mean.begin());
  const int64_t frames = g.frames(), frame_px = g.h * g.w;
  const int64_t per_frame = 4 * g.cp + 2 * g.taps * g.cp + g.taps;
  const int64_t chunks = g.chunks();
  std::vector<double> sums(chunks * per_frame, 0.0);
#pragma omp parallel
  {
    std::vector<float> pad(g.kt * g.hp * g.wp), z(frame_px * g.cp), gy(frame_px * g.cp);
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int64_t f = chunk * kChunk; f < g.chunk_end(chunk); ++f) {
        if (ms[f] == 0.0f) continue;
        double* base = &sums[chunk * per_frame];
        const FrameSums s{base, base + 4 * g.cp, base + 4 * g.cp + g.taps * g.cp,
                          base + 4 * g.cp + 2 * g.taps * g.cp};
        FrameConvolution(g, convolve, o.w.data(), xs, f, pad.data(), z.data());
        Routes(g, o, grad.typed_data() + f * out_frame, code.typed_data() + f * out_frame,
               xs + f * frame_px, ms[f], mean, z.data(), gy.data(), s);
        TapSums(g, pad.data(), gy.data(), z.data(), ms[f], s);
      }
  }
  const std::vector<double> total = InOrder(sums, per_frame);
  const double* ch_sums = total.data();
  const double* tap_gy = ch_sums + 4 * g.cp;
  const double* tap_zc = tap_gy + g.taps * g.cp;
  const double* tap_x = tap_zc + g.taps * g.cp;
  const double count = Count(g, ms);
  float* dws = dw->typed_data();
  float* dps = dparams->typed_data();
  for (int64_t ch = 0; ch < g.c; ++ch) {
    const double inv = Inv(st[g.c + ch]);
    const double dbias = ch_sums[ch], dscale = ch_sums[g.cp + ch] * inv;
    dps[ch] = static_cast<float>(dscale);
    dps[g.c + ch] = static_cast<float>(dbias);
    dps[2 * g.c + ch] = static_cast<float>(ch_sums[3 * g.cp + ch]);  // A
    dps[3 * g.c + ch] = static_cast<float>(ch_sums[2 * g.cp + ch]);  // B
    const double k = static_cast<double>(o.scale[ch]) * inv;
    for (int64_t tap = 0; tap < g.taps; ++tap) {
      const double centred = count > 0 ? (dbias * tap_x[tap] +
                                          dscale * inv * tap_zc[tap * g.cp + ch]) / count
                                       : 0.0;
      dws[tap * g.c + ch] = static_cast<float>(k * (tap_gy[tap * g.cp + ch] - centred));
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitFirstStageTrainForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitFirstStageTrainBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
