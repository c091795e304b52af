"""Ray plumbing: the embedded loopback Ray (local_ray), a trial's CUDA device (devices), what a
cluster offers a sweep and whether every node reaches its storage (doctor), and whether a
sweep's trials fit the machine or cluster before any starts (feasibility).

Ray is imported lazily, where a function needs it.
"""
