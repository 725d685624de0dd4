"""Dataset layer: DCASE Task 2 / MIMII naming, ground truth, scanning and WAV decoding."""
