"""Every tool's first import, before torch and the rest load: see gan.start."""

import sys
from pathlib import Path

from gan.start import (
    answer_config_questions,
    quiet_start,
    refuse_null_groups,
    refuse_pipeline_presets,
    refuse_unquoted_values,
    say_misspelt_settings,
)

quiet_start()
CONF = Path(__file__).resolve().parents[1] / "conf"
TOOL = Path(sys.argv[0]).stem
refuse_null_groups(CONF)
if (CONF / f"{TOOL}.yaml").is_file():  # Hydra's tools, not argparse's (bench_synth, soak)
    refuse_unquoted_values()
    say_misspelt_settings(CONF)  # Hydra's error report, wrapped: no cost till it fails
    refuse_pipeline_presets(CONF, TOOL)
    answer_config_questions(CONF, TOOL)  # --help, --cfg: before torch loads
