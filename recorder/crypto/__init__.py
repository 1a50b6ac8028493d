"""Cryptography at CallVault's edges: age encryption of stored objects (age.py) and SRTP on the forward
leg from the SFU (srtp.py)."""
