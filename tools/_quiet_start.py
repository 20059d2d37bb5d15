"""Every tool's first import, before torch and the rest load: see gan.start."""

import sys
from pathlib import Path

from gan.start import (
    answer_config_questions,
    quiet_start,
    refuse_null_groups,
    refuse_pipeline_presets,
    refuse_unquoted_values,
)

quiet_start()
CONF = Path(__file__).resolve().parents[1] / "conf"
refuse_null_groups(CONF)
if (CONF / f"{Path(sys.argv[0]).stem}.yaml").is_file():  # Hydra's tools, not argparse's
    refuse_unquoted_values()
refuse_pipeline_presets(CONF, Path(sys.argv[0]).stem)
answer_config_questions(CONF, Path(sys.argv[0]).stem)  # --help, --cfg: before torch loads
