"""Programs compiled unoptimised (`step.fast_compile_options`), for tests whose subject is what
a program computes (which parameters move, which statistics change), not how fast XLA's
optimised code runs it: XLA:CPU's optimising backend spends most of such a test compiling a
network that then runs a step or two."""
from gait_jax.training import step as step_lib


def compiled_once(jitted):
  """`jitted` (a `jax.jit` function, shardings and donation kept) compiled unoptimised on its
  first call's arguments; every later call must have the same shapes and types (a compiled
  program does not retrace)."""
  compiled = []

  def call(*args):
    if not compiled:
      compiled.append(jitted.lower(*args).compile(step_lib.fast_compile_options()))
    return compiled[0](*args)

  return call
