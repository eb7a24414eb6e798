"""Gateway adapters: one module (or package) per library at the edge — paho MQTT
(:mod:`.mqtt`), the SQLite journal (:mod:`.journal`), pyserial and bleak transports
(:mod:`.transports`), zeroconf (:mod:`.discovery`), the local status HTTP endpoint
(:mod:`.status`), the mains-power input (:mod:`.mains`) and A/B slots on disk
(:mod:`.upgrade`). Library errors are translated into the package's own exceptions here.
"""
