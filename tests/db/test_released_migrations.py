"""A numbered migration, once released, is history: every database that applied it checks its checksum.

``qf migrate`` refuses to start on a database whose applied migration changed
("changed after it was applied"), so an edit to a released file, even to a
comment, would stop every existing installation. This pins each released file's
SHA-256; a new migration is added here when it is released. Views and
functions change in ``sql/repeatable/`` instead.
"""

from __future__ import annotations

from qf_sentinel.qf.db.migrate import discover

RELEASED = {
    "001_foundation.sql": "e2b1b2745034c6ee7d2a36300dc3423e0d9684e29e521dec9ec2ae204f09f879",
    "002_events.sql": "0c5857ccd8e297c22bd8c71f00b96792d3f76c163417fde998b9f5ec96c9bef4",
    "003_indexer.sql": "6de413078d9a11244321811887b6f94b230cfa82a5fd6183bb719b0b55cf844e",
    "004_analytics.sql": "17430966bfcefe061452f31f3ed7eaf7d432ee5de2d2118f3d6298fc76d6e54b",
    "005_matching_runs.sql": "5ad123ba7036e538ed4d263f095ba5aa5f332b72b8f139100f745614c1a840de",
    "006_chain_genesis.sql": "49ca00af3d931f004e3f495f69ad83fa23b9cb26e421547910725f2094158d72",
    "007_incremental_analytics.sql": "6d497da51e427efc0c6365f16bc9e62aabea18eaf627f7e06b35166dc751a7af",
    "008_experiments.sql": "e3c126cef88122e53a7d1f8a35c5b79aebc231cf042484da997c53899d57cf22",
    "009_scorer_audit.sql": "da4031f841b9ffaa8abbc1e5a452b4c417443abd98d8aaab727cf14faf769895",
    "010_status_history_table.sql": "00fb6dcd006235345a856a8e3a549dc0b065da367f8ff6771e2b3d492891d64c",
    "011_donor_risk.sql": "a080cd44b38ce2af03748a6ece360d4588a140b889bab624d162480f5638c7ca",
    "012_domains.sql": "e29d7c1798b904549bbb2373acf16a26c85330ebf0c9a79309b147de768dc05f",
    "013_codonor_dirty.sql": "268a20b0631a63f676f21fd01f63489036de6a1690d833640453d05bf7319995",
    "014_allo_variants_and_profiles.sql": "0e1766d93cc596415b310bc80b150a4a8378ed4b92766bcf9975c0c2b2fc31a8",
    "015_ipfs_metadata.sql": "b39f0be8fed22c258118e3aaf3ce647385ba9348c64b381c42d33d89e3dd473b",
    "016_profile_metadata.sql": "521ccf60169b48f8460ff4df04ee57d37433b16a7079c140ddb963596d9c44ea",
    "017_project_names.sql": "c813f56fb2596aec08055751aa94f8e17d5a69f64dfbf0504a45c5525dd7decc",
    "018_usd_prices.sql": "3c08623211087b50022299ea3757e210656e6e78ccf9b0044a623accbfed05fb",
    "019_console_reviews.sql": "9f7d090d5ceb840f3931fa8abb1a531e4f649f7751ba2786bbc00bedd522e25c",
    "020_console_sessions.sql": "9ed5c4fdde7c56004db91dd7a3619a9e3cc26d55483f2942e793634297acfe6b",
    "021_unknown_topics_per_block.sql": "a32108a03b0e4335bd4e647dce14f9f1c438a4ecd9effee9377a9f690e1412a7",
    "022_contribution_risk.sql": "254f6cfd6ce9f14c301a03e4afe25f36c3e16c1b9d0c5ad541f6f1206712ecc0",
    "023_wallet_funding.sql": "f896278f5b747d5a37357b810a3886bdaf4193a7520743c4e974a5c30a814390",
    "024_reference_events_and_strategy_kinds.sql": "9d8950c70c8ec086b90f4e5bd4ce7ada78d43eb9d05c367f30e94a093dc9466c",
    "026_rounds.sql": "fe3a90cf2706c8b07ee46c91851c52fcfd9545cfbf02bc1889122a9a4a1f8705",
    "027_round_views.sql": "24c8e98219661f42b524d505c17ac4bbc86ec14f16f6055897b45128341500b0",
}


def test_no_released_migration_is_ever_edited() -> None:
    found = {m.name: m.checksum for m in discover()}
    edited = sorted(name for name, checksum in RELEASED.items() if found.get(name) != checksum)
    assert edited == [], f"released migrations edited or removed: {edited}; add a new migration instead"


def test_every_migration_is_pinned_here() -> None:
    unpinned = sorted(set(found := {m.name for m in discover()}) - set(RELEASED))
    assert unpinned == [], f"pin the new migrations {unpinned} in RELEASED (and never edit them after release)"
    assert found
