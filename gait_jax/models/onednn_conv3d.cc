// oneDNN's 3-D convolution as XLA:CPU custom calls (the XLA FFI): the forward, the input
// gradient and the kernel gradient of a stride-1, undilated, channels-last convolution,
// x [N, T, H, W, Cin] * w [kt, kh, kw, Cin, Cout] -> y [N, T', H', W', Cout].
//
// Why: XLA:CPU's own 3-D convolutions run far below the CPU's peak (Eigen's loops; its 2-D
// folds in conv.py are the best it offers), while oneDNN -- what PyTorch calls for the same
// layers -- has JIT kernels for AVX2, AVX-512 and AMX. Activations stay channels-last
// (oneDNN's `ndhwc`, no reorder of the large tensors); only the small kernels are reordered to
// the blocked layout oneDNN picks. Each direction has two handlers: float32 operands (strict
// float math unless the call's `bf16` attribute allows bfloat16 products), and bfloat16
// operands (the forward's x and w, the input gradient's output gradient and w, the kernel
// gradient's x and output gradient). Outputs and accumulation are float32 in both. With the
// operands already bfloat16 in memory, oneDNN's AMX kernels read them as they are instead of
// converting float32 tiles on the fly (which made them slower than float32's).
//
// Built by tools/build_onednn.sh from the onednn-cpu-gomp wheels; loaded by onednn_conv.py.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Dims = memory::dims;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One convolution's shapes in oneDNN's order, (N, C, D, H, W) and (O, I, D, H, W), and its
// float math.
struct Geometry {
  Dims src, wei, dst, strides{1, 1, 1}, pad_l, pad_r;
  bool bf16 = false;
  // The operands' type in memory (x, w and the output gradient; outputs are float32).
  memory::data_type in = memory::data_type::f32;
};

ffi::Error MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w,
                        ffi::Span<const int64_t> pads, int32_t bf16, Geometry* g) {
  g->bf16 = bf16 != 0;
  if (x.size() != 5 || w.size() != 5 || pads.size() != 6 || x[4] != w[3]) {
    return ffi::Error::InvalidArgument(
        "onednn conv3d: expected x [N,T,H,W,Cin], w [kt,kh,kw,Cin,Cout] and 6 pads");
  }
  g->src = {x[0], x[4], x[1], x[2], x[3]};
  g->wei = {w[4], w[3], w[0], w[1], w[2]};
  Dims out(3);
  for (int i = 0; i < 3; ++i) {
    g->pad_l.push_back(pads[2 * i]);
    g->pad_r.push_back(pads[2 * i + 1]);
    out[i] = x[1 + i] + pads[2 * i] + pads[2 * i + 1] - w[i] + 1;
    if (pads[2 * i] < 0 || pads[2 * i + 1] < 0 || out[i] < 1) {
      return ffi::Error::InvalidArgument("onednn conv3d: negative padding or empty output");
    }
  }
  g->dst = {x[0], w[4], out[0], out[1], out[2]};
  // A kernel one frame deep without temporal padding is a 2-D convolution of every frame:
  // the same buffers read as [N*T, H, W, C], for which oneDNN has faster kernels (AVX2: the
  // kernel gradient at 1x3x3, 128 channels, 1.2x). Not the 1x1x1s, whose 2-D ones ran slower.
  if (w[0] == 1 && pads[0] == 0 && pads[1] == 0 && w[1] * w[2] > 1) {
    g->src = {x[0] * x[1], x[4], x[2], x[3]};
    g->wei = {w[4], w[3], w[1], w[2]};
    g->dst = {x[0] * x[1], w[4], out[1], out[2]};
    g->strides = {1, 1};
    g->pad_l.erase(g->pad_l.begin());
    g->pad_r.erase(g->pad_r.begin());
  }
  return ffi::Error::Success();
}

memory::desc Plain(const Dims& dims, memory::format_tag tag,
                   memory::data_type type = memory::data_type::f32) {
  return memory::desc(dims, type, tag);
}
memory::desc Any(const Dims& dims, memory::data_type type = memory::data_type::f32) {
  return memory::desc(dims, type, memory::format_tag::any);
}
// [N, T, H, W, C] and [kt, kh, kw, Cin, Cout], or [N*T, H, W, C] and [kh, kw, Cin, Cout].
memory::format_tag Acts(const Dims& d) {
  return d.size() == 5 ? memory::format_tag::ndhwc : memory::format_tag::nhwc;
}
memory::format_tag KernelTag(const Geometry& g) {
  return g.wei.size() == 5 ? memory::format_tag::dhwio : memory::format_tag::hwio;
}

// Strict float32, or bfloat16 products allowed (oneDNN's fpmath mode); the caller's scratchpad
// (`user` mode): XLA runs independent custom calls on several threads at once, and the
// wheels' oneDNN shares one library scratchpad between primitives (built without
// DNNL_ENABLE_CONCURRENT_EXEC), which two concurrent calls corrupt.
dnnl::primitive_attr MathAttr(const Geometry& g) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  attr.set_fpmath_mode(g.bf16 ? dnnl::fpmath_mode::bf16 : dnnl::fpmath_mode::strict);
  return attr;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      Plain(g.src, Acts(g.src), g.in), Any(g.wei, g.in), Plain(g.dst, Acts(g.dst)), g.strides,
      g.pad_l, g.pad_r, MathAttr(g));
}

// A primitive and the kernel layout it wants, built once per shape (creating one costs far
// more than running a small convolution).
struct Entry {
  dnnl::primitive prim;
  memory::desc kernel;  // the primitive's weights (or weight-gradient) layout
  memory::desc scratchpad;
};

std::mutex cache_mutex;
std::map<std::vector<int64_t>, std::shared_ptr<Entry>>& Cache() {
  static auto* cache = new std::map<std::vector<int64_t>, std::shared_ptr<Entry>>();
  return *cache;
}

std::vector<int64_t> Key(int kind, const Geometry& g) {
  std::vector<int64_t> key{kind, g.bf16, static_cast<int64_t>(g.in)};
  for (const Dims* d : {&g.src, &g.wei, &g.pad_l, &g.pad_r}) {
    key.insert(key.end(), d->begin(), d->end());
  }
  return key;
}

enum Kind { kForward = 0, kInputGrad = 1, kKernelGrad = 2 };

// A primitive with the kernel layout (its `kernel_arg`) and the scratchpad it needs.
template <class Primitive>
void Fill(Entry* entry, const typename Primitive::primitive_desc& pd, int kernel_arg) {
  entry->prim = Primitive(pd);
  entry->kernel = pd.query_md(dnnl::query::exec_arg_md, kernel_arg);
  entry->scratchpad = pd.scratchpad_desc();
}

// The two gradients share one constructor shape: the activations, the kernel (layout `any`),
// the output gradient (of type g.in), the geometry and the forward as oneDNN's hint. `acts`
// and `kernel` are the types of the first two: the operand's g.in, the result's float32.
template <class Primitive>
void FillGradient(Entry* entry, const Geometry& g,
                  const dnnl::convolution_forward::primitive_desc& fwd, int kernel_arg,
                  memory::data_type acts, memory::data_type kernel) {
  typename Primitive::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, Plain(g.src, Acts(g.src), acts),
      Any(g.wei, kernel), Plain(g.dst, Acts(g.dst), g.in), g.strides, g.pad_l, g.pad_r, fwd,
      MathAttr(g));
  Fill<Primitive>(entry, pd, kernel_arg);
}

std::shared_ptr<Entry> Build(Kind kind, const Geometry& g) {
  auto entry = std::make_shared<Entry>();
  auto fwd = ForwardDesc(g);
  if (kind == kForward) {
    Fill<dnnl::convolution_forward>(entry.get(), fwd, DNNL_ARG_WEIGHTS);
  } else if (kind == kInputGrad) {
    FillGradient<dnnl::convolution_backward_data>(entry.get(), g, fwd, DNNL_ARG_WEIGHTS,
                                                  memory::data_type::f32, g.in);
  } else {
    FillGradient<dnnl::convolution_backward_weights>(entry.get(), g, fwd, DNNL_ARG_DIFF_WEIGHTS,
                                                     g.in, memory::data_type::f32);
  }
  return entry;
}

std::shared_ptr<Entry> Get(Kind kind, const Geometry& g) {
  auto key = Key(kind, g);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = Cache().find(key);
    if (it != Cache().end()) return it->second;
  }
  auto entry = Build(kind, g);
  std::lock_guard<std::mutex> lock(cache_mutex);
  return Cache().emplace(key, entry).first->second;
}

// A reorder between two layouts, with its scratchpad per call (see MathAttr).
void Reorder(dnnl::stream& stream, memory& from, memory& to) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(from, to, attr);
  memory scratchpad(pd.scratchpad_desc(), Engine());
  dnnl::reorder(pd).execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
}

// Runs `kind` on the caller's buffers: `acts_in`/`acts_out` are activations (channels-last),
// `kernel` the [kt, kh, kw, Cin, Cout] kernel (read for the forward and the input gradient,
// written for the kernel gradient).
ffi::Error Run(Kind kind, const Geometry& g, void* a, void* b, void* kernel) {
  try {
    auto entry = Get(kind, g);
    dnnl::stream stream(Engine());
    // The kernel is an operand (g.in) of the forward and the input gradient, the kernel
    // gradient's float32 result.
    auto kernel_type = kind == kKernelGrad ? memory::data_type::f32 : g.in;
    memory user_kernel(Plain(g.wei, KernelTag(g), kernel_type), Engine(), kernel);
    memory kernel_mem = user_kernel;
    bool reorder = entry->kernel != user_kernel.get_desc();
    if (reorder) kernel_mem = memory(entry->kernel, Engine());
    // One scratchpad per thread (see MathAttr), kept between calls: a fresh one each call (tens
    // of MB for a GEMM-based kernel gradient) was allocated and written into anew every time.
    thread_local std::vector<char> scratch_buffer;
    if (scratch_buffer.size() < entry->scratchpad.get_size()) {
      scratch_buffer.resize(entry->scratchpad.get_size());
    }
    memory scratchpad(entry->scratchpad, Engine(), scratch_buffer.data());
    if (reorder && kind != kKernelGrad) {
      Reorder(stream, user_kernel, kernel_mem);
    }
    if (kind == kForward) {  // a = x, b = y
      memory src(Plain(g.src, Acts(g.src), g.in), Engine(), a);
      memory dst(Plain(g.dst, Acts(g.dst)), Engine(), b);
      entry->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, kernel_mem},
                                   {DNNL_ARG_DST, dst},
                                   {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else if (kind == kInputGrad) {  // a = g (output gradient), b = gx
      memory diff_dst(Plain(g.dst, Acts(g.dst), g.in), Engine(), a);
      memory diff_src(Plain(g.src, Acts(g.src)), Engine(), b);
      entry->prim.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, kernel_mem},
                                   {DNNL_ARG_DIFF_SRC, diff_src},
                                   {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else {  // a = x, b = g
      memory src(Plain(g.src, Acts(g.src), g.in), Engine(), a);
      memory diff_dst(Plain(g.dst, Acts(g.dst), g.in), Engine(), b);
      entry->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, kernel_mem},
                                   {DNNL_ARG_SCRATCHPAD, scratchpad}});
      if (reorder) Reorder(stream, kernel_mem, user_kernel);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

// One handler per kind and operand type: forward (a = x, b = w, out = y), input gradient
// (a = output gradient, b = w, out = gx), kernel gradient (a = x, b = output gradient, out = gw).
template <Kind kind, ffi::DataType In>
ffi::Error Handle(ffi::Buffer<In> a, ffi::Buffer<In> b, ffi::Span<const int64_t> pads,
                  int32_t bf16, ffi::ResultBuffer<ffi::F32> out) {
  Geometry g;
  auto err = MakeGeometry(kind == kInputGrad ? out->dimensions() : a.dimensions(),
                          kind == kKernelGrad ? out->dimensions() : b.dimensions(), pads, bf16, &g);
  if (!err.success()) return err;
  if (In == ffi::DataType::BF16) g.in = memory::data_type::bf16;
  if (kind == kKernelGrad) {
    return Run(kind, g, a.untyped_data(), b.untyped_data(), out->typed_data());
  }
  return Run(kind, g, a.untyped_data(), out->typed_data(), b.untyped_data());
}

template <ffi::DataType In>
auto Binding() {
  return ffi::Ffi::Bind()
      .template Arg<ffi::Buffer<In>>()
      .template Arg<ffi::Buffer<In>>()
      .template Attr<ffi::Span<const int64_t>>("pads")
      .template Attr<int32_t>("bf16")
      .template Ret<ffi::Buffer<ffi::F32>>();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dForward, (Handle<kForward, ffi::F32>),
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dInputGrad, (Handle<kInputGrad, ffi::F32>),
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dKernelGrad, (Handle<kKernelGrad, ffi::F32>),
                              Binding<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dForwardBf16, (Handle<kForward, ffi::BF16>),
                              Binding<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dInputGradBf16, (Handle<kInputGrad, ffi::BF16>),
                              Binding<ffi::BF16>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitOnednnConv3dKernelGradBf16, (Handle<kKernelGrad, ffi::BF16>),
                              Binding<ffi::BF16>());

// The oneDNN version this was built against, for the log line that says which path runs.
extern "C" int GaitOnednnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
