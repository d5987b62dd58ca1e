"""Physical meetings of projects (réunion publique, atelier, balade urbaine): writes with their
outbox events."""
