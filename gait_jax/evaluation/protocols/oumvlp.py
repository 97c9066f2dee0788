"""OU-MVLP: probe sequence `00` against gallery `01`, one gallery view at a time (the
cross-view table; the group is called NM, as the reference names it)."""
from gait_jax.evaluation.cross_view import CrossView


class OuMvlp(CrossView):
  name = "oumvlp"
  PROBES = (("NM", ("00",)),)
  GALLERY = ("01",)


PROTOCOL = OuMvlp
