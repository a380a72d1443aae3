"""flockwatch: records public follower counts and catches bought followers."""

__version__ = "0.1.0"
