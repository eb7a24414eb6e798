# Replaced by firmware/build.py in every bundle.
FW_VERSION = "0.1.0-dev"
BUILD_ROLE = ""
