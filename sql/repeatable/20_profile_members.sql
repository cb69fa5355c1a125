-- qf.profile_members as it is now. Earlier definitions, kept as history: sql/014 (a new database runs them first).
CREATE OR REPLACE VIEW qf.profile_members AS
SELECT p.chain_id, p.registry, p.profile_id, p.name,
       ('0x' || encode(g.account, 'hex')) COLLATE "C" AS member,
       g.block_number AS since_block
FROM qf.profiles p
JOIN LATERAL (
    SELECT DISTINCT ON (e.account) e.account, e.block_number, e.granted
    FROM (
        SELECT account, block_number, log_index, true AS granted FROM qf.role_granted
        WHERE chain_id = p.chain_id AND contract = p.registry AND role = p.profile_id
        UNION ALL
        SELECT account, block_number, log_index, false FROM qf.role_revoked
        WHERE chain_id = p.chain_id AND contract = p.registry AND role = p.profile_id
    ) e ORDER BY e.account, e.block_number DESC, e.log_index DESC
) g ON g.granted;

COMMENT ON VIEW qf.profile_members IS 'Current members of each profile: accounts whose latest RoleGranted / RoleRevoked for the profile''s id is a grant (the owner is in qf.profiles).';
COMMENT ON COLUMN qf.profile_members.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.profile_members.registry IS 'Registry contract.';
COMMENT ON COLUMN qf.profile_members.profile_id IS 'Profile id.';
COMMENT ON COLUMN qf.profile_members.name IS 'Current name of the profile.';
COMMENT ON COLUMN qf.profile_members.member IS 'Member, 0x-hex.';
COMMENT ON COLUMN qf.profile_members.since_block IS 'Block of the grant that made it a member.';
