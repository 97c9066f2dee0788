"""One process of the multi-host training test: `python multihost_worker.py ARGS_JSON`.

ARGS_JSON: {"root", "partition", "workdir", "steps", "coordinator", "num_processes",
"process_id"}; the device count comes from XLA_FLAGS set by the parent."""
import json
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)  # conftest, helpers
sys.path.insert(0, os.path.dirname(TESTS))  # the repository


def main():
  args = json.loads(sys.argv[1])
  from conftest import load_config
  from gait_jax.modes import train
  from gait_jax.training import setup
  from gait_jax.common import parallel
  from helpers import train_standin
  c = load_config("test_tiny").unlock()
  c.data.root, c.data.partition = args["root"], args["partition"]
  c.train.total_steps = args["steps"]
  c.train.save_every = args["steps"]
  c.dist.coordinator_address = args["coordinator"]
  c.dist.num_processes = args["num_processes"]
  c.dist.process_id = args["process_id"]
  c.lock()
  parallel.maybe_initialize(c)
  import jax
  assert jax.process_count() == args["num_processes"], jax.process_count()
  setup.build_network = train_standin.build_network
  train.run(c, args["workdir"])
  print(f"WORKER {jax.process_index()} OK devices={jax.device_count()} "
        f"local={jax.local_device_count()}", flush=True)


if __name__ == "__main__":
  main()
