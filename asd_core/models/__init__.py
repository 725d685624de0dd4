"""Neural network modules (plain ``nn.Module``s, no training logic)."""
