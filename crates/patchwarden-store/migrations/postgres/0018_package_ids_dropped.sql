-- Every host's package list moved to `package_set` (0017): the per-host copy goes.
ALTER TABLE host_package_set DROP COLUMN package_ids
