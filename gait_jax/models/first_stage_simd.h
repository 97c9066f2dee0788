// What the first stage's native passes share (first_stage.cc at inference, first_stage_train.cc
// in training): 8-float vectors (one AVX2 register), the channel-padded parameter rows and the
// zero-padded input frames a frame's convolution reads.
#ifndef GAIT_JAX_MODELS_FIRST_STAGE_SIMD_H_
#define GAIT_JAX_MODELS_FIRST_STAGE_SIMD_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace gait_first_stage {

constexpr int kLanes = 8;
typedef float V8 __attribute__((vector_size(kLanes * sizeof(float))));

// v − 0 is v for every float, so this is one broadcast (0 + v is not: −0 + 0 is +0, so the
// compiler keeps the add).
__attribute__((always_inline)) inline V8 Splat(float v) { return v - V8{}; }
__attribute__((always_inline)) inline V8 Max(V8 a, V8 b) { return a > b ? a : b; }

__attribute__((always_inline)) inline V8 Load(const float* p) {
  V8 v;  // unaligned: std::vector does not align vector-typed elements to their 32 bytes
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Stores a block's 8 channels, or the last block's `lanes` < 8.
__attribute__((always_inline)) inline void Store(float* dst, V8 v, int64_t lanes) {
  if (lanes >= kLanes)  // a store of a known size: a call to memcpy per window is slow
    std::memcpy(dst, &v, sizeof(v));
  else
    std::memcpy(dst, &v, lanes * sizeof(float));
}

// `rows` rows of `c` floats as rows of the channel blocks' width (c rounded up to 8, zeros after).
inline std::vector<float> Blocks(const float* src, int64_t c, int64_t rows) {
  const int64_t width = (c + kLanes - 1) / kLanes * kLanes;
  std::vector<float> out(rows * width, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(&out[r * width], src + r * c, c * sizeof(float));
  return out;
}

// The kt input frames that output frame t of sequence n reads (t − kt/2 .. t + kt/2, zero
// outside the sequence), each zero-padded by kh/2 rows and kw/2 columns: `pad` holds
// kt × (h + kh − 1) × (w + kw − 1) floats.
inline void FillPad(const float* x, int64_t t_len, int64_t h, int64_t w, int64_t kt, int64_t kh,
                    int64_t kw, int64_t n, int64_t t, float* pad) {
  const int64_t hp = h + kh - 1, wp = w + kw - 1;
  for (int64_t dt = 0; dt < kt; ++dt) {
    float* dst = pad + dt * hp * wp;
    std::fill(dst, dst + hp * wp, 0.0f);
    const int64_t src_t = t + dt - kt / 2;
    if (src_t < 0 || src_t >= t_len) continue;
    const float* src = x + (n * t_len + src_t) * h * w;
    for (int64_t r = 0; r < h; ++r)
      std::memcpy(dst + (r + kh / 2) * wp + kw / 2, src + r * w, w * sizeof(float));
  }
}

}  // namespace gait_first_stage

#endif  // GAIT_JAX_MODELS_FIRST_STAGE_SIMD_H_
