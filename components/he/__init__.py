"""Homomorphic aggregation with TenSEAL CKKS (`ckks.py`): sites encrypt, the coordinator adds
ciphertexts without the secret key, sites decrypt."""
