"""The machine line every benchmark prints: what it names besides the CPU."""
from gait_jax.benchmarks import _machine


def _balloon(root, features):
  device = root / "virtio0"
  device.mkdir(parents=True)
  (device / "features").write_text(features + "\n")
  return str(root)


def test_free_page_reporting_is_bit_5_of_a_balloon_device(tmp_path):
  assert _machine.free_page_reporting(_balloon(tmp_path / "a", "0110010100000000"))
  assert not _machine.free_page_reporting(_balloon(tmp_path / "b", "0110000100000000"))
  assert not _machine.free_page_reporting(_balloon(tmp_path / "c", "0110"))  # too few bits
  assert not _machine.free_page_reporting(str(tmp_path / "no_balloon"))


def test_describe_names_free_page_reporting_where_present(monkeypatch):
  monkeypatch.setattr(_machine, "free_page_reporting", lambda: True)
  assert _machine.describe().endswith("(free page reporting)")
  monkeypatch.setattr(_machine, "free_page_reporting", lambda: False)
  assert "free page reporting" not in _machine.describe()
