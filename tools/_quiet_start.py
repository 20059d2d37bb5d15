"""Every tool's first import, before torch and the rest load: see gan.start."""

from pathlib import Path

from gan.start import quiet_start, refuse_null_groups

quiet_start()
refuse_null_groups(Path(__file__).resolve().parents[1] / "conf")
