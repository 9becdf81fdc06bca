-- Work that must run once per interval across every server sharing the store (the scheduled feed
-- sync): who holds it until when, and when it last completed (`Store::take_scheduled`). Times are
-- Unix seconds.
CREATE TABLE scheduled_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_run BIGINT NOT NULL
)
