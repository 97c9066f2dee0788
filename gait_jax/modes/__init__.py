"""The CLI modes: each a thin `run(config, workdir)` over the library stages."""
