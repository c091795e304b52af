"""dipddpm: Deep Image Prior and DDPM hybrids, as plain loops and as Ray Tune sweeps."""

__version__ = "0.1.0"
