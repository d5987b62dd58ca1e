"""The retention loop: the outbox relay onto Redis streams, the consumer groups (fan-out into
inboxes, engagement coming back, erasure), the loop's clock (alerts, digests, reminders) and the
mails. Knows the ground and the recommender; nothing here imports the API."""
