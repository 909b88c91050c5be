-- Local tenants were stored by absolute path, DATA_DIR/tenants/AA/BB/USER.db: a data
-- directory moved or restored elsewhere then sent users to an empty file at the old path.
-- Keep the part below the data directory: its length is fixed by the user id
-- ("tenants/" 8 + "AA/BB/" 6 + user id + ".db" 3). sqld locations ("SHARD/NAMESPACE") are
-- relative already.
UPDATE tenants
SET location = substr(location, length(location) - (17 + length(user_id)) + 1)
WHERE location LIKE '/%'
  AND substr(location, length(location) - (17 + length(user_id)) + 1)
      = 'tenants/' || substr(location, length(location) - length(user_id) - 8, 2) || '/'
        || substr(location, length(location) - length(user_id) - 5, 2) || '/' || user_id || '.db';
