"""Reference retrain/sposgait_large_GREW-train20000id_retrain_searchBy2loss.yaml: a byte-identical
copy of the 20000-id large retrain config, so it loads that file."""
import importlib.util
import os

_TWIN = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "sposgait_large_GREW_train20000id_retrain.py")


def get_config(arg=None):
  spec = importlib.util.spec_from_file_location("_grew20000_retrain", _TWIN)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
