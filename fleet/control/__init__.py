"""The fleet's control plane key: signing every config push and command (``wt.signed/1``).

Pure except :mod:`fleet.control._sql` (the per-gateway sequence in the store). See
:mod:`fleet.control._signer` for where the key lives and how the sequence is kept.
"""
from fleet.control._signer import (ENV_KEY_FILE, ControlKeyMissing, ControlSigner, MemorySeq, SeqSource,
                                   generate_key_files)
from fleet.control._sql import StoreSeq, TxSeq, bump_seq

__all__ = ["ENV_KEY_FILE", "ControlKeyMissing", "ControlSigner", "MemorySeq", "SeqSource", "StoreSeq", "TxSeq",
           "bump_seq", "generate_key_files"]
