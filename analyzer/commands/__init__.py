"""``wan-analyze`` sub-commands other than the analysis itself, one module each (registered in ``analyzer/cli.py``)."""
