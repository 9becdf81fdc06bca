-- Users as accounts: a name unique without regard to case (`name_key`: the name lower-cased; an
-- older name that clashed keeps its id as a suffix), the admin who created the account (separation
-- of duties: an approver created by a change's requester cannot approve it), when it was
-- disabled, when its token expires (NULL: never; `revoked_at` stays "the token was revoked").
ALTER TABLE api_user ADD COLUMN name_key TEXT;
ALTER TABLE api_user ADD COLUMN created_by BIGINT;
ALTER TABLE api_user ADD COLUMN disabled_at TEXT;
ALTER TABLE api_user ADD COLUMN token_expires_at TEXT;
UPDATE api_user SET name_key = lower(name) || CASE WHEN EXISTS (SELECT 1 FROM api_user o WHERE lower(o.name) = lower(api_user.name) AND o.id < api_user.id) THEN '#' || CAST(id AS TEXT) ELSE '' END;
CREATE UNIQUE INDEX api_user_by_folded_name ON api_user (name_key);
