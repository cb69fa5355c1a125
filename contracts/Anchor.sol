// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IProfileOwners {
    function isOwnerOfProfile(bytes32 profileId, address owner) external view returns (bool);
}

/// @title A profile's anchor: the address a project registers and receives funds under
/// @notice As in Allo v2, the profile's owner can make it call out (e.g. to withdraw).
contract Anchor {
    IProfileOwners public immutable registry;
    bytes32 public immutable profileId;

    error Unauthorized();
    error CallFailed();

    constructor(bytes32 profileId_, address registry_) {
        registry = IProfileOwners(registry_);
        profileId = profileId_;
    }

    function execute(address target, uint256 value, bytes memory data) external returns (bytes memory) {
        if (!registry.isOwnerOfProfile(profileId, msg.sender)) revert Unauthorized();
        if (target == address(0)) revert CallFailed();
        (bool ok, bytes memory result) = target.call{value: value}(data);
        if (!ok) revert CallFailed();
        return result;
    }

    receive() external payable {}
}
