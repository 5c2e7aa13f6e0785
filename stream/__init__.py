"""Stream processing: wire codecs and the event pipeline."""
