"""taskwatch's benchmarks: ``python -m benchmarks [--quick]`` (see README, "Performance")."""
