"""The dispatcher: recipients' emails and SMS from the outbox, reminders and expiry notices."""
