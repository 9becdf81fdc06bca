-- A host's package set as one row instead of a row per package, and its history as one row per
-- inventory that changed it instead of a row per package version: a first inventory of 1,000
-- packages wrote 2,000 rows, it now writes two. Id lists are JSON arrays of package_version ids.
CREATE TABLE host_package_set (
    host_id INTEGER PRIMARY KEY REFERENCES host (id),
    -- The package versions of the host's last inventory, ascending.
    package_ids TEXT NOT NULL
);
CREATE TABLE package_change (
    host_id BIGINT NOT NULL REFERENCES host (id),
    -- The inventory that made the change (host.inventory_version when it was stored).
    inventory_version BIGINT NOT NULL,
    changed_at TEXT NOT NULL,
    appeared TEXT NOT NULL,
    disappeared TEXT NOT NULL,
    PRIMARY KEY (host_id, inventory_version)
);
INSERT INTO host_package_set (host_id, package_ids)
SELECT host_id, json_group_array(package_version_id)
FROM (SELECT host_id, package_version_id FROM host_package ORDER BY host_id, package_version_id)
GROUP BY host_id;
-- Each moment a host's packages changed becomes one change row, numbered in time order below zero
-- (-k .. -1): the numbers of inventories stored from now on are above the host's inventory_version,
-- so the two never meet.
INSERT INTO package_change (host_id, inventory_version, changed_at, appeared, disappeared)
SELECT e.host_id,
    ROW_NUMBER() OVER (PARTITION BY e.host_id ORDER BY e.at) - 1 - COUNT(*) OVER (PARTITION BY e.host_id),
    e.at,
    (SELECT json_group_array(a.package_version_id) FROM package_history a
     WHERE a.host_id = e.host_id AND a.appeared_at = e.at),
    (SELECT json_group_array(d.package_version_id) FROM package_history d
     WHERE d.host_id = e.host_id AND d.disappeared_at = e.at)
FROM (SELECT host_id, appeared_at AS at FROM package_history
      UNION SELECT host_id, disappeared_at FROM package_history WHERE disappeared_at IS NOT NULL) e;
DROP TABLE package_history;
DROP TABLE host_package
