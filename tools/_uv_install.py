"""`python tools/_uv_install.py PIP_INSTALL_ARGS...`: installs into this interpreter's venv with
uv, resolving as pip would here and writing .pyc files as pip does. Used by tools/_venv.sh:
uv installs the pinned wheels in seconds where pip takes about a minute, and pip stays the
fallback.

pip's own configuration (its files and PIP_* variables, as `pip config list` shows them) is
carried over: indexes, find-links, constraints, trusted hosts, the certificate bundle; versions
are taken as pip takes them, the best over all indexes. uv itself is installed with pip.
Exit status 3: uv could not be installed, or pip is configured with something not carried
over; otherwise uv's own. On any failure the caller installs with pip.
"""
import os
import re
import subprocess
import sys

UV_VERSION = "0.13.9"
# pip's list-valued options and uv's flag for each value.
LISTS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
# Settings that change how pip talks or prints, not what it installs.
NO_EFFECT = {"timeout", "default-timeout", "disable-pip-version-check", "retries",
             "no-cache-dir", "cache-dir", "progress-bar", "quiet", "verbose", "no-input",
             "root-user-action", "no-color"}
# How pip reads a boolean setting's value as true.
TRUE = ("1", "true", "yes", "on")


def translate(config_lines):
  """(uv options, environment additions) for `pip config list` lines; None when one of them
  is not carried over."""
  args, env, compile_bytecode = ["--index-strategy", "unsafe-best-match"], {}, True
  for line in config_lines:
    match = re.fullmatch(r"\S*?\.([a-z-]+)='(.*)'", line.strip())
    if not match:
      return None
    key, value = match.groups()
    if key in LISTS:
      for item in value.split():
        args += [LISTS[key], item]
    elif key == "index-url":
      args += ["--index-url", value]
    elif key == "no-index":
      if value.lower() in TRUE:
        args.append("--no-index")
    elif key == "cert":
      env["SSL_CERT_FILE"] = value
    elif key == "no-compile":
      compile_bytecode = value.lower() not in TRUE
    elif key not in NO_EFFECT:
      return None
  # As pip does (uv does not by default): every later process imports jax, flax and the rest
  # from their .pyc files instead of compiling them again (3.6 s a process here; the test
  # suite and the recipes start many).
  if compile_bytecode:
    args.append("--compile-bytecode")
  return args, env


def main(argv):
  uv = os.path.join(os.path.dirname(sys.executable), "uv")
  if not os.access(uv, os.X_OK) and subprocess.run(
      [sys.executable, "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"],
      capture_output=True).returncode != 0:
    print("[setup] uv could not be installed: installing with pip", file=sys.stderr)
    return 3
  listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                          text=True)
  translated = translate(listed.stdout.splitlines()) if listed.returncode == 0 else None
  if translated is None:
    print("[setup] pip's configuration has settings uv would not follow: installing with pip",
          file=sys.stderr)
    return 3
  args, env = translated
  cmd = [uv, "pip", "install", "--quiet", "--python", sys.executable, *args, *argv]
  return subprocess.run(cmd, env={**os.environ, **env}).returncode


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
