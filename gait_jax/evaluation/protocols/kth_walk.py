"""KTH-walk, the real people of the KTH walking silhouettes: the gallery is each test id's
first indoor pass (`d4-00`), probes are grouped by scenario — d4 (same condition), d1
(outdoor), d2 (zoom), d3 (other clothes). The grouped table of `custom` with these globs."""
from gait_jax.evaluation.protocols.custom import Custom

GALLERY = "d4-00/*"
PROBES = "d4=d4-*/*;d1=d1-*/*;d2=d2-*/*;d3=d3-*/*"


class KthWalk(Custom):
  name = "kth_walk"

  def globs(self):
    return GALLERY, PROBES


PROTOCOL = KthWalk
