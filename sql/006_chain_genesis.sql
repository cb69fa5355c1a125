-- Remember which chain the rows came from: the genesis hash tells a restarted devnet
-- (same chain id, new chain) from the chain the database was indexed from.
ALTER TABLE qf.chains ADD COLUMN genesis_hash bytea CHECK (octet_length(genesis_hash) = 32);
COMMENT ON COLUMN qf.chains.genesis_hash IS
    'Hash of block 0 of the indexed chain; a node with the same chain id but another genesis is another chain.';
