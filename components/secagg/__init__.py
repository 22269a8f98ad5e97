"""SecAgg+ protocol core (Bonawitz et al. 2017; Bell et al. 2020's sparse neighbour graph), pure.

Per round (run, round):
1. every site makes two fresh X25519 key pairs (`keys.py`): `c` encrypts shares, `s` agrees
   pairwise masks; it publishes the public halves in an advertisement signed with its Ed25519
   site key (a coordinator cannot swap them: Flower's SecAgg+ signs nothing);
2. the coordinator verifies the advertisements and publishes a signed roster (`graph.py`):
   the sites, each advertisement's digest, a k-regular neighbour graph and the threshold t
   ((k + 1) / 2 < t <= k + 1: a site's secrets are shared among its k neighbours and itself);
3. each site Shamir-shares (`shamir.py`, GF(2^521 - 1)) its self-mask seed b and its masking
   private key s_sk among its neighbours and itself, each neighbour's pair of shares encrypted
   with AES-GCM under an HKDF key from X25519(c) with associated data (run, round, sender,
   receiver) (`shares.py`);
4. each site quantizes its update to fixed point with bits chosen so the sum of n cannot
   overflow mod 2^32 or 2^64 (`quantize.py`) and adds its self mask PRG(b) and, per neighbour
   v, +PRG(s_uv) (u < v) or -PRG(s_uv) (u > v) (`masking.py`); PRG is ChaCha20 keyed by a
   32-byte secret (`prg.py`), s_uv = HKDF(X25519(s_u, s_v)) bound to run, round and the pair;
5. the coordinator sums the masked vectors of the sites that delivered, publishes a signed
   request naming survivors and dropped sites, and each site answers with its self-mask
   shares of survivors and its key shares of dropped sites, never both for one site (and not
   twice with different answers) (`unmask.py`); with t shares each the coordinator removes
   the self masks of survivors and the dangling pairwise masks of dropped sites, leaving
   exactly the sum of the survivors' quantized updates mod 2^w.

Randomness is injected (`RandomBytes`, default `os.urandom`) so tests are seeded; production
always uses the OS CSPRNG.
"""
