"""Campaign: the curriculum rollup, the jobs the campaign launches and the sensors that drive it."""
