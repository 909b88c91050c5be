-- 1.0.0 stored 'current' and 'out_of_date', which go stale the moment the registry gains a
-- version: both become 'synced', and the version says the rest.
UPDATE tenants SET status = 'synced' WHERE status IN ('current', 'out_of_date');
