"""Every tool's first import, before torch and the rest load: see gan.start."""

import sys
from pathlib import Path

from gan.start import quiet_start, refuse_null_groups, refuse_pipeline_presets

quiet_start()
refuse_null_groups(Path(__file__).resolve().parents[1] / "conf")
refuse_pipeline_presets(Path(__file__).resolve().parents[1] / "conf", Path(sys.argv[0]).stem)
