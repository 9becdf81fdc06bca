-- The date of a feed's data as the data itself gives it (KEV's dateReleased, EPSS's score date,
-- the newest modified or published date of its advisory or CVE records): how old the knowledge
-- is, whatever the time it was imported (a bundle carried into an air-gapped site, the snapshot).
ALTER TABLE feed ADD COLUMN data_date TEXT;
-- The bundle a feed was last loaded from (`feeds import DIR` of a bundle, the shipped snapshot):
-- its directory and creation time; NULL once the feed is written from a feed file or a sync.
ALTER TABLE feed ADD COLUMN bundle TEXT;
