"""The parts of the speed bench (``bench/run.py``): workload, consumers, measurements, report."""
