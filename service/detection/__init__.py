"""The detection engine: streaming detectors that turn follower-count samples into explained verdicts."""
