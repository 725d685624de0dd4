"""Training loops (teacher now; the student follows the same checkpoint/resume pattern)."""
