"""Pure functions over frames that answer the app's questions, one module per question: the points
table every question reads, Pareto frontiers, the best of each class under a budget, matched pairs,
scaling fits, when each class wins, robustness at matched accuracy, the seed paper's claims."""
