// An XLA:CPU custom call that returns a buffer and writes nothing into it: what JAX's "empty"
// means (contents unspecified), for the residual slots a traced choice layer's `lax.switch`
// must return but never reads (switch_residuals.py). Why native code: every way of making an
// array in HLO writes it; only a custom call can leave XLA's freshly allocated buffer as it is.
// Its twin fills the buffer with all-ones bytes (NaN as floats, -1 as integers), so a test can
// show that nothing reads those slots: a fresh page is all zeros and would hide a reader.
#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

static ffi::Error Uninitialized(ffi::Result<ffi::AnyBuffer>) { return ffi::Error::Success(); }

static ffi::Error Poisoned(ffi::Result<ffi::AnyBuffer> out) {
  std::memset(out->untyped_data(), 0xff, out->size_bytes());
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitUninitialized, Uninitialized,
                              ffi::Ffi::Bind().Ret<ffi::AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GaitPoisoned, Poisoned, ffi::Ffi::Bind().Ret<ffi::AnyBuffer>());
