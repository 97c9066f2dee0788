// The small network's first stage at inference, in one pass over the silhouettes (an XLA:CPU
// custom call; first_stage.py says when the model uses it):
//
//   out = maxpool2x2(relu(mask · relu(BN(conv(x, w))) + mask · BN(x · gain)))
//
// x [N, T, H, W] (one channel, padded frames already zero), mask [N, T], w [kt, kh, kw, 1, C]
// with "same" zero padding, stem [3, C] = the stem BN's (running mean, scale·rsqrt(var + eps),
// bias), down [4, C] = the downsample's (gain, running mean, scale·rsqrt(var + eps), bias);
// out [N, T, H/2, W/2, C] (floor mode). Each pooling window's four stem outputs are summed tap by
// tap in registers and pooled at once, so the full-resolution C-channel tensor that XLA would
// write and read back several times (69 MB a 768-frame row at C = 8) never reaches memory.
// Frames run in parallel on OpenMP's threads (the ones oneDNN's wheels use too).
#include <cstdint>
#include <utility>
#include <vector>

#include "first_stage_simd.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using gait_first_stage::Blocks;
using gait_first_stage::kLanes;
using gait_first_stage::Load;
using gait_first_stage::Max;
using gait_first_stage::Splat;
using gait_first_stage::Store;
using gait_first_stage::V8;

struct Shape {
  int64_t n, t, h, w, c, kt, kh, kw;
};

// Channel-padded copies of the parameters: rows of `blocks` × 8 floats (C rounded up to 8).
struct Params {
  int64_t blocks;
  std::vector<float> w;  // [taps][blocks × 8]
  std::vector<float> stem;  // [3][blocks × 8]: running mean, scale·rsqrt(var + eps), bias
  std::vector<float> down;  // [4][blocks × 8]: gain, running mean, scale·rsqrt(...), bias
  V8 at(const std::vector<float>& v, int64_t row, int64_t b) const {
    return Load(&v[(row * blocks + b) * kLanes]);
  }
};

// The sums of one window row, input column by input column: every index into `acc` is a
// template constant (the loops are expanded at compile time, not left to the optimiser), so
// the sums stay in registers — written as loops over the columns, GCC kept them in memory.
// Column `Col` of a row adds its one broadcast value into every output column it reaches.
template <int N, int R, int Col, int... Dw>
__attribute__((always_inline)) inline void Column(V8 (&acc)[2 * N][2], const V8* wv,
                                                  const float* row,
                                                  std::integer_sequence<int, Dw...>) {
  const V8 v = Splat(row[Col]);
  ((Col - Dw >= 0 && Col - Dw < 2 * N
        ? (void)(acc[(Col - Dw >= 0 && Col - Dw < 2 * N) ? Col - Dw : 0][R] += v * wv[Dw])
        : (void)0),
   ...);
}

template <int KW, int N, int R, int... Cols>
__attribute__((always_inline)) inline void Row(V8 (&acc)[2 * N][2], const V8* wv,
                                               const float* row,
                                               std::integer_sequence<int, Cols...>) {
  (Column<N, R, Cols>(acc, wv, row, std::make_integer_sequence<int, KW>{}), ...);
}

// N adjacent pooling windows of one channel block: their 4·N stem outputs summed tap by tap
// (each input value broadcast once per window row; 4·N independent sums), then BN, mask, ReLU,
// the downsample's BN, the sum, ReLU and the window maximum. `corner`: the first window's
// top-left input in the padded frames (row stride wp, frame stride hp·wp); `xc`: the same pixel
// of frame t, which the downsample reads.
template <int KT, int KH, int KW, int N>
__attribute__((always_inline)) inline void Windows(const Params& p, const float* corner,
                                                   const float* xc, int64_t hp, int64_t wp,
                                                   int64_t b, V8 mask, V8 out[N]) {
  V8 acc[2 * N][2];  // [output column][window row]
  for (int c = 0; c < 2 * N; ++c) acc[c][0] = acc[c][1] = V8{};
  using Cols = std::make_integer_sequence<int, 2 * N + KW - 1>;
  for (int dt = 0; dt < KT; ++dt)
    for (int dh = 0; dh < KH; ++dh) {
      V8 wv[KW];
      for (int dw = 0; dw < KW; ++dw) wv[dw] = p.at(p.w, (dt * KH + dh) * KW + dw, b);
      const float* row = corner + dt * hp * wp + dh * wp;
      Row<KW, N, 0>(acc, wv, row, Cols{});
      Row<KW, N, 1>(acc, wv, row + wp, Cols{});
    }
  const V8 stem_mean = p.at(p.stem, 0, b), stem_a = p.at(p.stem, 1, b);
  const V8 stem_bias = p.at(p.stem, 2, b), gain = p.at(p.down, 0, b);
  const V8 down_mean = p.at(p.down, 1, b), down_a = p.at(p.down, 2, b);
  const V8 down_bias = p.at(p.down, 3, b);
  for (int k = 0; k < N; ++k) {
    const float xs[4] = {xc[2 * k], xc[2 * k + 1], xc[wp + 2 * k], xc[wp + 2 * k + 1]};
    V8 best = V8{};  // every candidate is a ReLU output: ≥ 0
    for (int e = 0; e < 4; ++e) {  // (row, column) of the window: 00, 01, 10, 11
      const V8 sum = acc[2 * k + e % 2][e / 2];
      const V8 stem = Max((sum - stem_mean) * stem_a + stem_bias, V8{}) * mask;
      const V8 down = (Splat(xs[e]) * gain - down_mean) * down_a + down_bias;
      best = Max(best, Max(stem + down * mask, V8{}));
    }
    out[k] = best;
  }
}

// One output frame: the padded input frames it reads into `pad` (kt × (h+kh−1) × (w+kw−1)),
// then its pooling windows two at a time, channel block by channel block. The kernel's size is
// a template argument, so that the tap loops are expanded at compile time.
template <int KT, int KH, int KW>
__attribute__((always_inline)) inline void FrameOf(const Shape& s, const Params& p,
                                                   const float* x, float m, int64_t n,
                                                   int64_t t, float* pad, float* out) {
  const int64_t pt = KT / 2, ph = KH / 2, pw = KW / 2;
  const int64_t hp = s.h + KH - 1, wp = s.w + KW - 1;
  gait_first_stage::FillPad(x, s.t, s.h, s.w, KT, KH, KW, n, t, pad);
  const float* center = pad + pt * hp * wp + ph * wp + pw;  // x at (t, 0, 0)
  const int64_t ho = s.h / 2, wo = s.w / 2;
  const V8 mask = Splat(m);
  for (int64_t i = 0; i < ho; ++i) {
    for (int64_t j = 0; j < wo;) {
      const float* corner = pad + (2 * i) * wp + 2 * j;
      const float* xc = center + (2 * i) * wp + 2 * j;
      float* dst = out + (i * wo + j) * s.c;
      for (int64_t b = 0; b < p.blocks; ++b) {
        const int64_t lanes = s.c - b * kLanes;
        V8 best[2];
        if (j + 1 < wo) {
          Windows<KT, KH, KW, 2>(p, corner, xc, hp, wp, b, mask, best);
          Store(dst + b * kLanes, best[0], lanes);
          Store(dst + s.c + b * kLanes, best[1], lanes);
        } else {
          Windows<KT, KH, KW, 1>(p, corner, xc, hp, wp, b, mask, best);
          Store(dst + b * kLanes, best[0], lanes);
        }
      }
      j += (j + 1 < wo) ? 2 : 1;
    }
  }
}

using FrameFn = void (*)(const Shape&, const Params&, const float*, float, int64_t, int64_t,
                        float*, float*);

// The single-convolution candidates' kernels (candidates.py: ops 0, 1, 2). AVX2 + FMA code
// (tools/build_onednn.sh compiles this file so; first_stage.py checks the CPU).
#define GAIT_FRAME(KT, KH, KW)                                                   \
  void Frame##KT##KH##KW(const Shape& s, const Params& p, const float* x, float m,    \
                         int64_t n, int64_t t, float* pad, float* out) {              \
    FrameOf<KT, KH, KW>(s, p, x, m, n, t, pad, out);                                  \
  }
GAIT_FRAME(3, 3, 3)
GAIT_FRAME(3, 1, 3)
GAIT_FRAME(3, 3, 1)
#undef GAIT_FRAME

FrameFn FrameFor(const Shape& s) {
  if (s.kt == 3 && s.kh == 3 && s.kw == 3) return Frame333;
  if (s.kt == 3 && s.kh == 1 && s.kw == 3) return Frame313;
  if (s.kt == 3 && s.kh == 3 && s.kw == 1) return Frame331;
  return nullptr;
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> mask,
                   ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> stem,
                   ffi::Buffer<ffi::F32> down, ffi::ResultBuffer<ffi::F32> out) {
  const auto xd = x.dimensions(), wd = w.dimensions();
  if (xd.size() != 4 || wd.size() != 5 || wd[3] != 1)
    return ffi::Error::InvalidArgument(
        "first stage: expected x [N, T, H, W], w [kt, kh, kw, 1, C]");
  const Shape s{xd[0], xd[1], xd[2], xd[3], wd[4], wd[0], wd[1], wd[2]};
  const FrameFn frame = FrameFor(s);
  if (frame == nullptr)
    return ffi::Error::InvalidArgument("first stage: kernels (3,3,3), (3,1,3), (3,3,1) only");
  const auto od = out->dimensions();
  if (static_cast<int64_t>(mask.element_count()) != s.n * s.t ||
      static_cast<int64_t>(stem.element_count()) != 3 * s.c ||
      static_cast<int64_t>(down.element_count()) != 4 * s.c || od.size() != 5 ||
      od[2] != s.h / 2 || od[3] != s.w / 2 || od[4] != s.c)
    return ffi::Error::InvalidArgument("first stage: operand shapes do not match");
  Params p;
  p.blocks = (s.c + kLanes - 1) / kLanes;
  p.w = Blocks(w.typed_data(), s.c, s.kt * s.kh * s.kw);
  p.stem = Blocks(stem.typed_data(), s.c, 3);
  p.down = Blocks(down.typed_data(), s.c, 4);
  const float* xs = x.typed_data();
  const float* ms = mask.typed_data();
  float* os = out->typed_data();
  const int64_t frames = s.n * s.t, pad_size = s.kt * (s.h + s.kh - 1) * (s.w + s.kw - 1);
  const int64_t out_frame = (s.h / 2) * (s.w / 2) * s.c;
#pragma omp parallel
  {
    std::vector<float> pad(pad_size);
#pragma omp for schedule(static)
    for (int64_t f = 0; f < frames; ++f)
      frame(s, p, xs, ms[f], f / s.t, f % s.t, pad.data(), os + f * out_frame);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitFirstStageForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
