// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Metadata} from "./Metadata.sol";
import {DonationStrategy} from "./DonationStrategy.sol";

/// @title QF Sentinel's Allo v2-compatible core
/// @notice A pool registry in the shape of Allo v2's `Allo.sol`: `createPool` deploys one
/// donation strategy per pool (factory pattern) and the core emits Allo v2's exact
/// `PoolCreated`, `PoolFunded` and `PoolMetadataUpdated` events, so an indexer written for
/// real Allo v2 rounds reads this devnet unchanged.
/// @dev Donors approve the core once for the ERC-20 token; strategies pull donations through
/// `pullToken`, which only a pool's own strategy may call.
contract QFAllo is ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Allo's marker for the chain's native token.
    address public constant NATIVE = 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE;
    /// @notice 1e18 is 100%, as in Allo.
    uint256 public constant FEE_DENOMINATOR = 1e18;

    struct Pool {
        bytes32 profileId;
        DonationStrategy strategy;
        address token;
        address manager;
        Metadata metadata;
    }

    event PoolCreated(
        uint256 indexed poolId,
        bytes32 indexed profileId,
        address strategy,
        address token,
        uint256 amount,
        Metadata metadata
    );
    event PoolFunded(uint256 indexed poolId, uint256 amount, uint256 fee);
    event PoolMetadataUpdated(uint256 indexed poolId, Metadata metadata);

    error NotPoolManager();
    error NotPoolStrategy();
    error UnknownPool();
    error BadAmount();

    address public immutable treasury;
    uint256 public immutable percentFee;
    uint256 public poolCount;
    mapping(uint256 => Pool) private _pools;

    constructor(address treasury_, uint256 percentFee_) {
        require(percentFee_ < FEE_DENOMINATOR, "fee");
        treasury = treasury_;
        percentFee = percentFee_;
    }

    /// @notice Create a pool: deploy its strategy, set its windows, fund it, announce it.
    /// @dev Event order follows Allo v2: strategy events (TimestampsUpdated), then PoolFunded,
    /// then PoolCreated, all in one transaction.
    function createPool(
        bytes32 profileId,
        address token,
        uint256 amount,
        Metadata calldata metadata,
        uint64[4] calldata windows,
        address[] calldata allowedTokens
    ) external payable nonReentrant returns (uint256 poolId) {
        poolId = ++poolCount;
        DonationStrategy strategy = new DonationStrategy(address(this), poolId, msg.sender, token, allowedTokens);
        _pools[poolId] = Pool(profileId, strategy, token, msg.sender, metadata);
        strategy.initialize(windows[0], windows[1], windows[2], windows[3]);
        if (amount > 0) {
            _fundPool(poolId, amount);
        } else if (msg.value != 0) {
            revert BadAmount();
        }
        emit PoolCreated(poolId, profileId, address(strategy), token, amount, metadata);
    }

    /// @notice Add matching funds to a pool; a fee goes to the treasury, as in Allo.
    function fundPool(uint256 poolId, uint256 amount) external payable nonReentrant {
        if (amount == 0) revert BadAmount();
        _fundPool(poolId, amount);
    }

    function updatePoolMetadata(uint256 poolId, Metadata calldata metadata) external {
        Pool storage pool = _pool(poolId);
        if (msg.sender != pool.manager) revert NotPoolManager();
        pool.metadata = metadata;
        emit PoolMetadataUpdated(poolId, metadata);
    }

    /// @notice Apply to a pool; `data` is abi.encode(recipientId, recipientAddress, Metadata).
    function registerRecipient(uint256 poolId, bytes calldata data) external returns (address) {
        return _pool(poolId).strategy.registerRecipient(data, msg.sender);
    }

    /// @notice Donate; `data` is abi.encode(recipientId, token, amount).
    function allocate(uint256 poolId, bytes calldata data) external payable nonReentrant {
        _pool(poolId).strategy.allocate{value: msg.value}(data, msg.sender);
    }

    /// @notice Move a donor's ERC-20 donation; only the pool's own strategy may ask.
    function pullToken(uint256 poolId, address token, address from, address to, uint256 amount) external {
        if (msg.sender != address(_pool(poolId).strategy)) revert NotPoolStrategy();
        IERC20(token).safeTransferFrom(from, to, amount);
    }

    function getPool(uint256 poolId) external view returns (Pool memory) {
        return _pool(poolId);
    }

    function isPoolManager(uint256 poolId, address account) external view returns (bool) {
        return _pool(poolId).manager == account;
    }

    function _fundPool(uint256 poolId, uint256 amount) internal {
        Pool storage pool = _pools[poolId];
        uint256 fee = (amount * percentFee) / FEE_DENOMINATOR;
        uint256 net = amount - fee;
        if (pool.token == NATIVE) {
            if (msg.value != amount) revert BadAmount();
            if (fee > 0) _sendNative(treasury, fee);
            _sendNative(address(pool.strategy), net);
        } else {
            if (msg.value != 0) revert BadAmount();
            if (fee > 0) IERC20(pool.token).safeTransferFrom(msg.sender, treasury, fee);
            IERC20(pool.token).safeTransferFrom(msg.sender, address(pool.strategy), net);
        }
        pool.strategy.increasePoolAmount(net);
        emit PoolFunded(poolId, net, fee);
    }

    function _pool(uint256 poolId) internal view returns (Pool storage pool) {
        pool = _pools[poolId];
        if (address(pool.strategy) == address(0)) revert UnknownPool();
    }

    function _sendNative(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        require(ok, "native transfer");
    }
}
