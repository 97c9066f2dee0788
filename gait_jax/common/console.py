"""A readable console for the entry points (main and the tools)."""
import logging as std_logging

from absl import logging


class _QuietLibraries:
  """INFO lines only from gait_jax, and orbax (which reports every save step and every
  metadata store at INFO/WARNING) only from ERROR up."""

  def filter(self, record) -> bool:
    path = record.pathname.replace("\\", "/")
    if "/orbax/" in path:
      return record.levelno >= std_logging.ERROR
    return record.levelno >= std_logging.WARNING or "/gait_jax/" in path


def quiet_libraries() -> None:
  """Installs the filter on absl's handler and on Python's root handlers (once)."""
  handlers = [logging.get_absl_handler()] + list(std_logging.getLogger().handlers)
  for handler in handlers:
    if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
      handler.addFilter(_QuietLibraries())
