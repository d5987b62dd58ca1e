"""Territories: the French geography (communes, EPCI, départements, régions, arrondissements),
its loader and ``locate``. The ground of the ground: it knows nothing of users or projects."""
