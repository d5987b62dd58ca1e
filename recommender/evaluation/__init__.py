"""Offline evaluation of the recommender on real participatory-budgeting ballots (Pabulib).

``pabulib`` reads the files, ``space`` builds the evaluation space (territories, budgets, items,
voters, ballots), ``tasks`` cuts it into the tasks A–D, ``baselines`` and ``engine`` give the
scorers, ``metrics`` the pure ranking metrics, ``run`` ties them together.
"""
