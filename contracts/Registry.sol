// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Metadata} from "./Metadata.sol";
import {Anchor} from "./Anchor.sol";

/// @title QF Sentinel's Allo v2-compatible project registry
/// @notice Speaks Allo v2's IRegistry as strategies call it (`getProfileByAnchor`,
/// `isOwnerOrMemberOfProfile`) and emits its exact events, so real strategy bytecode can check
/// registrations against it and an indexer reads it like the real Registry. A profile's id is
/// keccak256(nonce, owner) and its anchor a contract the registry deploys, as in Allo v2;
/// members are AccessControl roles named by the profile id (RoleGranted / RoleRevoked).
/// @dev Written for the devnet from the IRegistry interface; not a copy of Allo's Registry
/// (no CREATE3 anchors, no fund recovery, no upgradeability).
contract Registry is AccessControl {
    struct Profile {
        bytes32 id;
        uint256 nonce;
        string name;
        Metadata metadata;
        address owner;
        address anchor;
    }

    event ProfileCreated(
        bytes32 indexed profileId, uint256 nonce, string name, Metadata metadata, address owner, address anchor
    );
    event ProfileNameUpdated(bytes32 indexed profileId, string name, address anchor);
    event ProfileMetadataUpdated(bytes32 indexed profileId, Metadata metadata);
    event ProfileOwnerUpdated(bytes32 indexed profileId, address owner);
    event ProfilePendingOwnerUpdated(bytes32 indexed profileId, address pendingOwner);

    error Unauthorized();
    error NonceNotAvailable();
    error ZeroAddress();
    error NotPendingOwner();

    mapping(bytes32 => Profile) private _profiles;
    mapping(address => bytes32) public anchorToProfileId;
    mapping(bytes32 => address) public profileIdToPendingOwner;

    modifier onlyProfileOwner(bytes32 profileId) {
        if (_profiles[profileId].owner != msg.sender) revert Unauthorized();
        _;
    }

    function createProfile(
        uint256 nonce,
        string memory name,
        Metadata memory metadata,
        address owner,
        address[] memory members
    ) external returns (bytes32 profileId) {
        if (owner == address(0)) revert ZeroAddress();
        profileId = keccak256(abi.encodePacked(nonce, owner));
        if (_profiles[profileId].anchor != address(0)) revert NonceNotAvailable();
        address anchor = _newAnchor(profileId, name);
        _profiles[profileId] = Profile(profileId, nonce, name, metadata, owner, anchor);
        anchorToProfileId[anchor] = profileId;
        if (members.length > 0 && owner != msg.sender) revert Unauthorized();
        for (uint256 i = 0; i < members.length; i++) {
            if (members[i] == address(0)) revert ZeroAddress();
            _grantRole(profileId, members[i]);
        }
        emit ProfileCreated(profileId, nonce, name, metadata, owner, anchor);
    }

    /// @notice A new name gets a new anchor, as in Allo v2 (the anchor is derived from the name).
    function updateProfileName(bytes32 profileId, string memory name)
        external
        onlyProfileOwner(profileId)
        returns (address anchor)
    {
        anchor = _newAnchor(profileId, name);
        Profile storage profile = _profiles[profileId];
        delete anchorToProfileId[profile.anchor];
        profile.name = name;
        profile.anchor = anchor;
        anchorToProfileId[anchor] = profileId;
        emit ProfileNameUpdated(profileId, name, anchor);
    }

    function updateProfileMetadata(bytes32 profileId, Metadata memory metadata) external onlyProfileOwner(profileId) {
        _profiles[profileId].metadata = metadata;
        emit ProfileMetadataUpdated(profileId, metadata);
    }

    function updateProfilePendingOwner(bytes32 profileId, address pendingOwner) external onlyProfileOwner(profileId) {
        profileIdToPendingOwner[profileId] = pendingOwner;
        emit ProfilePendingOwnerUpdated(profileId, pendingOwner);
    }

    function acceptProfileOwnership(bytes32 profileId) external {
        if (profileIdToPendingOwner[profileId] != msg.sender) revert NotPendingOwner();
        _profiles[profileId].owner = msg.sender;
        delete profileIdToPendingOwner[profileId];
        emit ProfileOwnerUpdated(profileId, msg.sender);
    }

    function addMembers(bytes32 profileId, address[] memory members) external onlyProfileOwner(profileId) {
        for (uint256 i = 0; i < members.length; i++) {
            if (members[i] == address(0)) revert ZeroAddress();
            _grantRole(profileId, members[i]);
        }
    }

    function removeMembers(bytes32 profileId, address[] memory members) external onlyProfileOwner(profileId) {
        for (uint256 i = 0; i < members.length; i++) {
            _revokeRole(profileId, members[i]);
        }
    }

    function getProfileById(bytes32 profileId) external view returns (Profile memory) {
        return _profiles[profileId];
    }

    function getProfileByAnchor(address anchor) external view returns (Profile memory) {
        return _profiles[anchorToProfileId[anchor]];
    }

    function isOwnerOrMemberOfProfile(bytes32 profileId, address account) external view returns (bool) {
        return _profiles[profileId].owner == account || hasRole(profileId, account);
    }

    function isOwnerOfProfile(bytes32 profileId, address owner) external view returns (bool) {
        return _profiles[profileId].owner == owner;
    }

    function isMemberOfProfile(bytes32 profileId, address member) external view returns (bool) {
        return hasRole(profileId, member);
    }

    function _newAnchor(bytes32 profileId, string memory name) internal returns (address) {
        return address(new Anchor{salt: keccak256(abi.encode(profileId, name))}(profileId, address(this)));
    }
}
