"""Every tool's first import, before torch and the rest load: see gan.start."""

from gan.start import quiet_start

quiet_start()
