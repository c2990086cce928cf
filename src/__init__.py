"""Lightning + gin project template: training, run folders and results analysis."""
