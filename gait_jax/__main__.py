from gait_jax.main import entry

entry()
