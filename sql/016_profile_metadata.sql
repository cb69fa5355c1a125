-- Registry profiles and distributions carry metadata pointers too (migration 014's tables):
-- queue them for the IPFS fetcher of migration 015 like the pools' and applications'.
SELECT qf.watch_metadata_pointers('qf.profile_created');
SELECT qf.watch_metadata_pointers('qf.profile_metadata_updated');
SELECT qf.watch_metadata_pointers('qf.distribution_updated');
