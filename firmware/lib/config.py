# Validated device settings, read-only once built (cfgtool.py builds them).
# Kept tiny: this is what stays in RAM while the device runs.


class Config:
    """Validated settings; read with cfg.get(key). ``problems``: messages of keys that fell back."""

    def __init__(self, values, version, problems=()):
        self._v = values
        self.version = version
        self.problems = list(problems)

    def get(self, key):
        return self._v[key]

