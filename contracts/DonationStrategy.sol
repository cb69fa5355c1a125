// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Metadata} from "./Metadata.sol";

interface IQFAlloCore {
    function pullToken(uint256 poolId, address token, address from, address to, uint256 amount) external;
}

/// @title Donation strategy in the shape of Allo v2's DonationVotingMerkleDistribution
/// @notice One contract per pool, deployed by the core. Recipients register and are reviewed
/// (statuses packed 4 bits per recipient, 64 per row, as in Allo v2); donors allocate inside
/// the allocation window to accepted recipients, and donations go straight to the recipient
/// (the "direct transfer" variant); the manager distributes the matching pool afterwards.
/// Every event has Allo v2's exact signature.
contract DonationStrategy {
    using SafeERC20 for IERC20;

    address public constant NATIVE = 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE;

    enum Status {
        None,
        Pending,
        Accepted,
        Rejected,
        Appealed
    }

    struct Recipient {
        address recipientAddress;
        uint256 index;
        bool exists;
    }

    event Registered(address indexed recipientId, bytes data, address sender);
    event UpdatedRegistration(address indexed recipientId, bytes data, address sender, uint8 status);
    event RecipientStatusUpdated(uint256 indexed rowIndex, uint256 fullRow, address sender);
    event TimestampsUpdated(
        uint64 registrationStartTime,
        uint64 registrationEndTime,
        uint64 allocationStartTime,
        uint64 allocationEndTime,
        address sender
    );
    event Allocated(address indexed recipientId, uint256 amount, address token, address sender, address origin);
    event Distributed(address indexed recipientId, address recipientAddress, uint256 amount, address sender);
    event FundsDistributed(uint256 amount, address grantee, address indexed token, address indexed recipientId);

    error OnlyCore();
    error OnlyManager();
    error AlreadyInitialized();
    error InvalidTimestamps();
    error RegistrationClosed();
    error AllocationClosed();
    error AllocationNotEnded();
    error NotAccepted(address recipientId);
    error UnknownRecipient(address recipientId);
    error NotRecipientOwner();
    error ZeroAmount();
    error TokenNotAllowed(address token);
    error BadValue();
    error LengthMismatch();
    error BadStatus();
    error PoolTooSmall();

    address public immutable allo;
    uint256 public immutable poolId;
    address public immutable manager;
    /// @notice Asset of the matching pool (NATIVE or an ERC-20).
    address public immutable poolToken;

    uint64 public registrationStartTime;
    uint64 public registrationEndTime;
    uint64 public allocationStartTime;
    uint64 public allocationEndTime;
    uint256 public poolAmount;
    /// @notice As in Allo v2's donation-voting strategies: starts at 1; a recipient registered
    /// when it was n sits at nibble n - 1 of the status bitmap, and Registered carries n.
    uint256 public recipientsCounter = 1;
    bool private _initialized;

    mapping(address => bool) public allowedTokens;
    mapping(address => Recipient) private _recipients;
    /// @notice rowIndex => 64 statuses of 4 bits each.
    mapping(uint256 => uint256) public statusesBitMap;

    modifier onlyCore() {
        if (msg.sender != allo) revert OnlyCore();
        _;
    }

    modifier onlyManager() {
        if (msg.sender != manager) revert OnlyManager();
        _;
    }

    constructor(
        address allo_,
        uint256 poolId_,
        address manager_,
        address poolToken_,
        address[] memory allowedTokens_
    ) {
        allo = allo_;
        poolId = poolId_;
        manager = manager_;
        poolToken = poolToken_;
        for (uint256 i = 0; i < allowedTokens_.length; i++) {
            allowedTokens[allowedTokens_[i]] = true;
        }
    }

    receive() external payable {}

    function initialize(uint64 regStart, uint64 regEnd, uint64 allocStart, uint64 allocEnd) external onlyCore {
        if (_initialized) revert AlreadyInitialized();
        _initialized = true;
        _setTimestamps(regStart, regEnd, allocStart, allocEnd, tx.origin);
    }

    function increasePoolAmount(uint256 amount) external onlyCore {
        poolAmount += amount;
    }

    function updatePoolTimestamps(uint64 regStart, uint64 regEnd, uint64 allocStart, uint64 allocEnd)
        external
        onlyManager
    {
        _setTimestamps(regStart, regEnd, allocStart, allocEnd, msg.sender);
    }

    /// @notice Called by the core; `data` is abi.encode(recipientId, recipientAddress, Metadata).
    function registerRecipient(bytes calldata data, address sender) external onlyCore returns (address recipientId) {
        if (block.timestamp < registrationStartTime || block.timestamp > registrationEndTime) {
            revert RegistrationClosed();
        }
        address recipientAddress;
        Metadata memory metadata;
        (recipientId, recipientAddress, metadata) = abi.decode(data, (address, address, Metadata));
        if (recipientId != sender) revert NotRecipientOwner();
        Recipient storage recipient = _recipients[recipientId];
        recipient.recipientAddress = recipientAddress;
        if (!recipient.exists) {
            recipient.exists = true;
            uint256 counter = recipientsCounter++;
            recipient.index = counter - 1;
            _writeStatus(recipient.index, Status.Pending);
            emit Registered(recipientId, abi.encode(data, counter), sender);
        } else {
            Status current = _readStatus(recipient.index);
            Status next = (current == Status.Rejected) ? Status.Appealed : Status.Pending;
            _writeStatus(recipient.index, next);
            emit UpdatedRegistration(recipientId, data, sender, uint8(next));
        }
    }

    /// @notice Set recipients' statuses; emits the full row after each change, as Allo v2 does.
    function reviewRecipients(address[] calldata recipientIds, uint8[] calldata statuses) external onlyManager {
        if (recipientIds.length != statuses.length) revert LengthMismatch();
        for (uint256 i = 0; i < recipientIds.length; i++) {
            Recipient storage recipient = _recipients[recipientIds[i]];
            if (!recipient.exists) revert UnknownRecipient(recipientIds[i]);
            if (statuses[i] == 0 || statuses[i] > uint8(Status.Appealed)) revert BadStatus();
            uint256 row = _writeStatus(recipient.index, Status(statuses[i]));
            emit RecipientStatusUpdated(recipient.index / 64, row, msg.sender);
        }
    }

    /// @notice Called by the core for one donation; `data` is abi.encode(recipientId, token, amount).
    function allocate(bytes calldata data, address sender) external payable onlyCore {
        if (block.timestamp < allocationStartTime || block.timestamp > allocationEndTime) {
            revert AllocationClosed();
        }
        (address recipientId, address token, uint256 amount) = abi.decode(data, (address, address, uint256));
        if (amount == 0) revert ZeroAmount();
        if (!allowedTokens[token]) revert TokenNotAllowed(token);
        Recipient storage recipient = _recipients[recipientId];
        if (!recipient.exists || _readStatus(recipient.index) != Status.Accepted) revert NotAccepted(recipientId);
        if (token == NATIVE) {
            if (msg.value != amount) revert BadValue();
            (bool ok,) = recipient.recipientAddress.call{value: amount}("");
            require(ok, "native transfer");
        } else {
            if (msg.value != 0) revert BadValue();
            IQFAlloCore(allo).pullToken(poolId, token, sender, recipient.recipientAddress, amount);
        }
        emit Allocated(recipientId, amount, token, sender, tx.origin);
    }

    /// @notice Pay out the matching pool after the allocation window. Emits DVMD's
    /// `FundsDistributed` and BaseStrategy's generic `Distributed` for each payout, since real
    /// Allo v2 strategies emit one or the other and an indexer must read both.
    function distribute(address[] calldata recipientIds, uint256[] calldata amounts) external onlyManager {
        address token = poolToken;
        if (block.timestamp <= allocationEndTime) revert AllocationNotEnded();
        if (recipientIds.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < recipientIds.length; i++) {
            Recipient storage recipient = _recipients[recipientIds[i]];
            if (!recipient.exists || _readStatus(recipient.index) != Status.Accepted) {
                revert NotAccepted(recipientIds[i]);
            }
            if (amounts[i] > poolAmount) revert PoolTooSmall();
            poolAmount -= amounts[i];
            if (token == NATIVE) {
                (bool ok,) = recipient.recipientAddress.call{value: amounts[i]}("");
                require(ok, "native transfer");
            } else {
                IERC20(token).safeTransfer(recipient.recipientAddress, amounts[i]);
            }
            emit FundsDistributed(amounts[i], recipient.recipientAddress, token, recipientIds[i]);
            emit Distributed(recipientIds[i], recipient.recipientAddress, amounts[i], msg.sender);
        }
    }

    /// @notice The strategy's id, as Allo's BaseStrategy answers it: keccak256(abi.encode(name and version)).
    /// The indexer reads it to learn the pool's kind (qf.strategy_kinds lists this one as a donation strategy).
    function getStrategyId() external pure returns (bytes32) {
        return keccak256(abi.encode("QFSentinelDonationStrategyv1.0"));
    }

    function getRecipientStatus(address recipientId) external view returns (uint8) {
        Recipient storage recipient = _recipients[recipientId];
        if (!recipient.exists) return 0;
        return uint8(_readStatus(recipient.index));
    }

    function getRecipientIndex(address recipientId) external view returns (uint256) {
        Recipient storage recipient = _recipients[recipientId];
        if (!recipient.exists) revert UnknownRecipient(recipientId);
        return recipient.index;
    }

    function _setTimestamps(uint64 regStart, uint64 regEnd, uint64 allocStart, uint64 allocEnd, address sender)
        internal
    {
        if (regStart > regEnd || allocStart > allocEnd || regStart > allocEnd) revert InvalidTimestamps();
        registrationStartTime = regStart;
        registrationEndTime = regEnd;
        allocationStartTime = allocStart;
        allocationEndTime = allocEnd;
        emit TimestampsUpdated(regStart, regEnd, allocStart, allocEnd, sender);
    }

    function _readStatus(uint256 index) internal view returns (Status) {
        uint256 row = statusesBitMap[index / 64];
        return Status((row >> ((index % 64) * 4)) & 15);
    }

    function _writeStatus(uint256 index, Status status) internal returns (uint256 row) {
        uint256 shift = (index % 64) * 4;
        row = (statusesBitMap[index / 64] & ~(uint256(15) << shift)) | (uint256(status) << shift);
        statusesBitMap[index / 64] = row;
    }
}
