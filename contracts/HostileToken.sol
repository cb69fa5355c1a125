// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title A test token whose metadata answers are chosen by its deployer, byte for byte
/// @notice Tests only (never deployed by the devnet): it stands for any contract someone
/// deploys and names as a pool's token. `symbol()`, `name()` and `decimals()` return exactly
/// the bytes the owner set (a string with a NUL byte, 100 kB, a number out of range, bytes
/// that are no ABI encoding at all), or revert when told to. Balances are minimal ERC-20 so a
/// pool may hold it. It answers a strategy's `getStrategyId()` the same way, for the indexer's
/// reading of a pool's strategy kind.
contract HostileToken {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error NotOwner();
    error Refused();

    address public immutable owner;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    uint256 public totalSupply;

    /// @dev What a metadata function answers: these bytes followed by `padding` bytes of "H", or a revert.
    struct Answer {
        bytes data;
        uint256 padding;
        bool reverts;
    }

    /// @dev Keyed by selector: symbol(), name(), decimals(), getStrategyId().
    mapping(bytes4 => Answer) private _answers;

    constructor() {
        owner = msg.sender;
    }

    /// @notice Set the exact return data of `selector` (symbol, name, decimals, getStrategyId): `data` then `padding`
    /// bytes of "H" (cheap huge answers), or a revert.
    function setAnswer(bytes4 selector, bytes calldata data, uint256 padding, bool reverts) external {
        if (msg.sender != owner) revert NotOwner();
        _answers[selector] = Answer(data, padding, reverts);
    }

    function symbol() external view returns (string memory) {
        _answer(this.symbol.selector);
    }

    function name() external view returns (string memory) {
        _answer(this.name.selector);
    }

    function decimals() external view returns (uint8) {
        _answer(this.decimals.selector);
    }

    function getStrategyId() external view returns (bytes32) {
        _answer(this.getStrategyId.selector);
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner();
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed < amount) revert Refused();
        allowance[from][msg.sender] = allowed - amount;
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) internal {
        if (balanceOf[from] < amount) revert Refused();
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    /// @dev Ends the call with the set answer as return data (or a revert), whatever the declared type.
    function _answer(bytes4 selector) internal view {
        Answer storage answer = _answers[selector];
        if (answer.reverts) revert Refused();
        bytes memory data = abi.encodePacked(answer.data, new bytes(answer.padding));
        uint256 from = answer.data.length;
        uint256 to = data.length;
        assembly {
            let start := add(data, 32)
            for { let i := from } lt(i, to) { i := add(i, 1) } { mstore8(add(start, i), 0x48) }
            return(start, to)
        }
    }
}
