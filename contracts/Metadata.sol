// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Allo v2's off-chain metadata pointer: a protocol id (1 = IPFS) and a pointer (a CID).
struct Metadata {
    uint256 protocol;
    string pointer;
}
