-- When each exposure row reached ClickHouse (the server's clock at the insert): the seals
-- of the results rollup (api/src/rollup/sealer.rs) take the rows inserted before their end.
-- One statement on its own (18.16 has no ADD COLUMN IF NOT EXISTS, so a file that failed
-- after it could not run again); 006 gives the rows already there a fixed value.
ALTER TABLE exposures ADD COLUMN inserted_at DateTime DEFAULT now();
