"""The replay-at-scale and fault harness behind ``bench/soak.py`` and the soak test."""
