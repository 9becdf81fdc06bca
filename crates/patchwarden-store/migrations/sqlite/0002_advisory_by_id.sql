-- Upserts look advisories up by id within one source, where every row may share the source: lead with the id.
CREATE INDEX advisory_by_id ON advisory (id, source)
