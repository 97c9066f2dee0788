"""The tiny test config with dotted-key overrides, as the tests that train build it."""
from conftest import load_config


def tiny(data=None, **overrides):
  """configs/test_tiny.py, on `data` (a walkers.generate summary) when given, with overrides
  such as `**{"train.total_steps": 4}`; locked."""
  c = load_config("test_tiny").unlock()
  if data is not None:
    c.data.root, c.data.partition = data["root"], data["partition"]
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c.lock()
