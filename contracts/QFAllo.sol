// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Metadata} from "./Metadata.sol";
import {DonationStrategy} from "./DonationStrategy.sol";

/// @notice What the core calls on a pool's strategy: Allo v2's IStrategy, as far as the core needs it.
interface IPoolStrategy {
    function initialize(uint256 poolId, bytes memory data) external;
    function getPoolId() external view returns (uint256);
    function getAllo() external view returns (address);
    function increasePoolAmount(uint256 amount) external;
    function registerRecipient(bytes memory data, address sender) external payable returns (address);
    function allocate(bytes memory data, address sender) external payable;
    function distribute(address[] memory recipientIds, bytes memory data, address sender) external;
}

/// @notice What the core asks the registry: Allo v2's IRegistry membership check.
interface IProfileRegistry {
    function isOwnerOrMemberOfProfile(bytes32 profileId, address account) external view returns (bool);
}

/// @title QF Sentinel's Allo v2-compatible core
/// @notice Speaks Allo v2's IAllo as strategies call it (`getRegistry`, `getPool` in IAllo's
/// layout, `isPoolManager`, `increasePoolAmount` on funding) and as round operators do:
/// `createPoolWithCustomStrategy` initialises a deployed strategy (such as the real
/// DonationVotingMerkleDistributionDirectTransferStrategy bytecode), `createPool` clones an
/// approved one (EIP-1167), and `registerRecipient` / `allocate` / `distribute` forward to the
/// pool's strategy with the caller as sender. It emits Allo v2's exact `PoolCreated`,
/// `PoolFunded` and `PoolMetadataUpdated` events, so an indexer written for real Allo v2 rounds
/// reads this devnet unchanged. `createDonationPool` is the project's own shortcut: it deploys
/// the project's DonationStrategy (ERC-20 donations pulled through `pullToken`, which only a
/// pool's own strategy may call; donors approve the core once).
/// @dev Written from the IAllo interface; not a copy of Allo.sol (no base fee, no roles beyond
/// a pool's admin and managers, no upgradeability).
contract QFAllo is ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Allo's marker for the chain's native token.
    address public constant NATIVE = 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE;
    /// @notice 1e18 is 100%, as in Allo.
    uint256 public constant FEE_DENOMINATOR = 1e18;

    /// @notice IAllo.Pool's layout: strategies decode `getPool` as this.
    struct Pool {
        bytes32 profileId;
        address strategy;
        address token;
        Metadata metadata;
        bytes32 managerRole;
        bytes32 adminRole;
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

    event StrategyApproved(address strategy);

    error NotPoolManager();
    error NotPoolStrategy();
    error NotProfileMember();
    error NotOwner();
    error NotCloneable();
    error BadStrategy();
    error UnknownPool();
    error BadAmount();

    address public immutable owner;
    address public immutable treasury;
    uint256 public immutable percentFee;
    address public immutable registry;
    uint256 public poolCount;
    mapping(uint256 => Pool) private _pools;
    mapping(uint256 => address) private _admins;
    mapping(uint256 => mapping(address => bool)) private _managers;
    mapping(address => bool) public isCloneableStrategy;

    constructor(address treasury_, uint256 percentFee_, address registry_) {
        require(percentFee_ < FEE_DENOMINATOR, "fee");
        owner = msg.sender;
        treasury = treasury_;
        percentFee = percentFee_;
        registry = registry_;
    }

    /// @notice Let `createPool` clone this strategy (Allo's owner-approved strategy list).
    function addToCloneableStrategies(address strategy) external {
        if (msg.sender != owner) revert NotOwner();
        if (strategy == address(0)) revert BadStrategy();
        isCloneableStrategy[strategy] = true;
        emit StrategyApproved(strategy);
    }

    /// @notice IAllo: a pool on an already deployed strategy, initialised with `initData`.
    /// @dev Event order follows Allo v2: the strategy's own events (Initialized,
    /// TimestampsUpdated), then PoolFunded, then PoolCreated, all in one transaction.
    function createPoolWithCustomStrategy(
        bytes32 profileId,
        address strategy,
        bytes memory initData,
        address token,
        uint256 amount,
        Metadata memory metadata,
        address[] memory managers
    ) external payable nonReentrant returns (uint256 poolId) {
        return _createPool(profileId, strategy, initData, token, amount, metadata, managers);
    }

    /// @notice IAllo: a pool on a fresh clone of an approved strategy.
    function createPool(
        bytes32 profileId,
        address strategy,
        bytes memory initData,
        address token,
        uint256 amount,
        Metadata memory metadata,
        address[] memory managers
    ) external payable nonReentrant returns (uint256 poolId) {
        if (!isCloneableStrategy[strategy]) revert NotCloneable();
        return _createPool(profileId, Clones.clone(strategy), initData, token, amount, metadata, managers);
    }

    /// @notice IAllo: add matching funds (see `fundPool`); `registerRecipient`, `allocate` and
    /// `distribute` forward to the pool's strategy with the caller as sender.
    function distribute(uint256 poolId, address[] memory recipientIds, bytes memory data) external nonReentrant {
        IPoolStrategy(_pool(poolId).strategy).distribute(recipientIds, data, msg.sender);
    }

    /// @notice The project's own pool: deploy a DonationStrategy, set its windows, fund it, announce it.
    /// @dev Event order follows Allo v2: strategy events (TimestampsUpdated), then PoolFunded,
    /// then PoolCreated, all in one transaction.
    function createDonationPool(
        bytes32 profileId,
        address token,
        uint256 amount,
        Metadata calldata metadata,
        uint64[4] calldata windows,
        address[] calldata allowedTokens
    ) external payable nonReentrant returns (uint256 poolId) {
        poolId = ++poolCount;
        DonationStrategy strategy = new DonationStrategy(address(this), poolId, msg.sender, token, allowedTokens);
        _pools[poolId] = Pool(profileId, address(strategy), token, metadata, _managerRole(poolId), bytes32(poolId));
        _admins[poolId] = msg.sender;
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
        if (!isPoolManager(poolId, msg.sender)) revert NotPoolManager();
        pool.metadata = metadata;
        emit PoolMetadataUpdated(poolId, metadata);
    }

    /// @notice Apply to a pool; `data` is abi.encode(recipientId, recipientAddress, Metadata).
    /// @dev For a DonationStrategy pool, `data` is abi.encode(recipientId, recipientAddress, Metadata).
    function registerRecipient(uint256 poolId, bytes calldata data) external payable returns (address) {
        return IPoolStrategy(_pool(poolId).strategy).registerRecipient{value: msg.value}(data, msg.sender);
    }

    /// @notice Donate; for a DonationStrategy pool `data` is abi.encode(recipientId, token, amount).
    function allocate(uint256 poolId, bytes calldata data) external payable nonReentrant {
        IPoolStrategy(_pool(poolId).strategy).allocate{value: msg.value}(data, msg.sender);
    }

    /// @notice Move a donor's ERC-20 donation; only the pool's own strategy may ask.
    function pullToken(uint256 poolId, address token, address from, address to, uint256 amount) external {
        if (msg.sender != _pool(poolId).strategy) revert NotPoolStrategy();
        IERC20(token).safeTransferFrom(from, to, amount);
    }

    function getPool(uint256 poolId) external view returns (Pool memory) {
        return _pool(poolId);
    }

    function getStrategy(uint256 poolId) external view returns (address) {
        return _pool(poolId).strategy;
    }

    function getRegistry() external view returns (address) {
        return registry;
    }

    function getTreasury() external view returns (address) {
        return treasury;
    }

    function getPercentFee() external view returns (uint256) {
        return percentFee;
    }

    function getBaseFee() external pure returns (uint256) {
        return 0;
    }

    function getFeeDenominator() external pure returns (uint256) {
        return FEE_DENOMINATOR;
    }

    function isPoolAdmin(uint256 poolId, address account) public view returns (bool) {
        _pool(poolId);
        return _admins[poolId] == account;
    }

    /// @notice As in Allo v2, a pool's admin is one of its managers.
    function isPoolManager(uint256 poolId, address account) public view returns (bool) {
        return isPoolAdmin(poolId, account) || _managers[poolId][account];
    }

    function _createPool(
        bytes32 profileId,
        address strategy,
        bytes memory initData,
        address token,
        uint256 amount,
        Metadata memory metadata,
        address[] memory managers
    ) internal returns (uint256 poolId) {
        if (!IProfileRegistry(registry).isOwnerOrMemberOfProfile(profileId, msg.sender)) revert NotProfileMember();
        if (strategy == address(0)) revert BadStrategy();
        poolId = ++poolCount;
        _pools[poolId] = Pool(profileId, strategy, token, metadata, _managerRole(poolId), bytes32(poolId));
        _admins[poolId] = msg.sender;
        for (uint256 i = 0; i < managers.length; i++) {
            _managers[poolId][managers[i]] = true;
        }
        IPoolStrategy(strategy).initialize(poolId, initData);
        if (IPoolStrategy(strategy).getPoolId() != poolId || IPoolStrategy(strategy).getAllo() != address(this)) {
            revert BadStrategy();
        }
        if (amount > 0) {
            _fundPool(poolId, amount);
        } else if (msg.value != 0) {
            revert BadAmount();
        }
        emit PoolCreated(poolId, profileId, strategy, token, amount, metadata);
    }

    function _managerRole(uint256 poolId) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(poolId, "manager"));
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
        IPoolStrategy(pool.strategy).increasePoolAmount(net);
        emit PoolFunded(poolId, net, fee);
    }

    function _pool(uint256 poolId) internal view returns (Pool storage pool) {
        pool = _pools[poolId];
        if (pool.strategy == address(0)) revert UnknownPool();
    }

    function _sendNative(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        require(ok, "native transfer");
    }
}
