"""What people do with the loop's mails that the ground records: unsubscribing (at once),
opens and clicks (as outbox events)."""
