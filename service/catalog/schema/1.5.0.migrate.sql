-- The counts of the tenants already there (the triggers count every write from now on).
INSERT INTO tenant_counts (schema_version, status, tenants)
SELECT coalesce(schema_version, 'none'), status, count(*) FROM tenants GROUP BY 1, 2;
