"""Fleet rollouts: every tenant brought to one registry version, resumably."""
