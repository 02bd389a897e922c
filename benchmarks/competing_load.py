# competing load: streams 2 x 64 MB float32 arrays (beyond the 32 MB L3) forever, one core
import numpy as np
a = np.ones(16_000_000, dtype=np.float32)
b = np.empty_like(a)
while True:
    np.multiply(a, 1.0001, out=b)
