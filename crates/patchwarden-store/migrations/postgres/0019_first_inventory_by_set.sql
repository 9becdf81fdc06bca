-- A host's first inventory no longer lists every package version it brought in `appeared` (a
-- thousand ids per host, most of the store at 100,000 hosts): the change row names the package
-- set instead — every version of `appeared_set` appeared (with those in `appeared`, if any).
ALTER TABLE package_change ADD COLUMN appeared_set BIGINT
